"""The pinned metrics of ARCHITECTURE.md ("Metrics") that evaluation reports, as functions of arrays, and
how each compares with its baselines. The lip metrics training logs too are models/training/lip_metrics.py.

Lips are (frames, 16) in [0, 1] of the crop; faces are (frames, S, S, 3) uint8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.image import StructuralSimilarityIndexMeasure

from models.training.lip_metrics import lip_metrics, redetected_lmd
from tasks.rows.landmarks import landmarks_in_crops

# Which way is better, per metric name: compared against each baseline by `beats_baselines`.
HIGHER_IS_BETTER = {"mouth_open_r", "gen_ssim", "gen_psnr", "sync_r", "outside_psnr", "mouth_psnr",
                    "mouth_ssim"}
LOWER_IS_BETTER = {"lstm/val_loss", "lmd_px", "gen_lmd_px", "full_lmd_px"}
CLOSER_TO_ONE_IS_BETTER = {"seam"}  # a ratio to the source: 1.0 is a border nobody can see


def lstm_metrics(
    predicted: np.ndarray, true: np.ndarray, lips_std: np.ndarray, face_size: int, lip_indices: list[int]
) -> dict:
    """lstm/val_loss (MSE of the z-scored lips: the mean cancels in the difference), lmd_px, mouth_open_r."""
    val_loss = float(np.mean(((predicted - true) / lips_std) ** 2))
    return {"lstm/val_loss": val_loss, **lip_metrics(predicted, true, face_size, lip_indices)}


def generator_obedience(faces: np.ndarray, asked: np.ndarray, lip_indices: list[int]) -> dict:
    """gen_lmd_px: dlib run again on `faces`, its lips against the lips asked for; gen_face_found:
    the share of faces where dlib finds one at all."""
    px, found = redetected_lmd(landmarks_in_crops(faces, lip_indices), asked, faces.shape[1])
    return {"gen_lmd_px": px, "gen_face_found": found}


# A frame whose error is under one grey level (RMS) is as near as 8 bits can say: its PSNR counts as that
# level's, 20 log10(255) = 48.1 dB, so that one frame painted exactly (a flat lower face with a closed
# mouth) does not make the mean over frames infinite.
MIN_MSE = (1 / 255) ** 2


@torch.no_grad()
def image_metrics(generated: np.ndarray, real: np.ndarray, batch_size: int = 64) -> dict:
    """gen_ssim and gen_psnr (dB, the mean of per-frame values, each at most 48.1 dB: MIN_MSE) of uint8
    faces, compared as [0, 1] images."""
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
    psnr = []
    for lo in range(0, len(real), batch_size):
        g, r = (
            torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size])).permute(0, 3, 1, 2).float() / 255
            for x in (generated, real)
        )
        ssim.update(g, r)
        psnr.append(-10 * torch.log10((g - r).square().mean((1, 2, 3)).clamp(min=MIN_MSE)))
    return {"gen_ssim": float(ssim.compute()), "gen_psnr": float(torch.cat(psnr).mean())}


def sync_metric(found: np.ndarray, true: np.ndarray, face_size: int, lip_indices: list[int]) -> float:
    """sync_r: Pearson r of the mouth opening dlib finds on generated frames against the true one,
    over the frames where it finds a face; NaN when it finds too few or either opening is constant."""
    ok = ~np.isnan(found[:, 0])
    if ok.sum() < 3:
        return float("nan")
    return lip_metrics(found[ok], true[ok], face_size, lip_indices)["mouth_open_r"]


def beats_baselines(metrics: dict, baselines: tuple[str, ...]) -> dict[str, bool]:
    """For each model metric and baseline present: does the model do better? An undefined r (a
    constant predictor's) counts as 0, no correlation; an undefined model metric never wins."""
    verdict = {}
    for name in sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER | CLOSER_TO_ONE_IS_BETTER):
        model = metrics.get(name)
        for baseline in baselines:
            key = f"{baseline}/{name}"
            if key not in metrics:
                continue
            other = metrics[key]
            if other is None and name in HIGHER_IS_BETTER and name.endswith("_r"):
                other = 0.0
            if model is None or other is None:
                verdict[key] = model is not None
                continue
            if name in CLOSER_TO_ONE_IS_BETTER:
                verdict[key] = abs(math.log(max(model, 1e-9))) < abs(math.log(max(other, 1e-9)))
            else:
                verdict[key] = model > other if name in HIGHER_IS_BETTER else model < other
    return verdict
