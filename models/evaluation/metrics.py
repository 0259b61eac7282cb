"""The pinned metrics of ARCHITECTURE.md ("Metrics") as functions of arrays, for training and evaluation.

Lips are (frames, 16) in [0, 1] of the crop; faces are (frames, S, S, 3) uint8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.image import StructuralSimilarityIndexMeasure

from models.rendering.lips import CLOSED_QUANTILE
from tasks.rows.landmarks import LIP_POINTS, landmarks_in_crops, lips_opening

# Which way is better, per metric name: compared against each baseline by `beats_baselines`.
HIGHER_IS_BETTER = {"mouth_open_r", "gen_ssim", "gen_psnr", "sync_r", "outside_psnr", "mouth_psnr",
                    "mouth_ssim"}
LOWER_IS_BETTER = {"lstm/val_loss", "lmd_px", "gen_lmd_px", "full_lmd_px"}
CLOSER_TO_ONE_IS_BETTER = {"seam"}  # a ratio to the source: 1.0 is a border nobody can see


def lip_distances(predicted: np.ndarray, true: np.ndarray, face_size: int) -> np.ndarray:
    """(frames,) the mean distance of each frame's lip points from the true ones, in crop pixels:
    lmd_px of one frame. Lips are (frames, LIPS_DIM) in [0, 1] of the crop."""
    offsets = (np.asarray(predicted) - np.asarray(true)).reshape(len(true), LIP_POINTS, 2)
    return np.linalg.norm(offsets, axis=2).mean(1) * face_size


def lip_metrics(predicted: np.ndarray, true: np.ndarray, face_size: int, lip_indices: list[int]) -> dict:
    """lmd_px (mean distance of the lip points, crop pixels) and mouth_open_r (Pearson r of the mouth
    opening, tasks.rows.landmarks.lips_opening)."""
    # float64 before the mean: a constant prediction must come out exactly constant (r undefined).
    opening_p = lips_opening(predicted, lip_indices).astype(np.float64)
    opening_t = lips_opening(true, lip_indices).astype(np.float64)
    p, t = opening_p - opening_p.mean(), opening_t - opening_t.mean()
    scale = np.sqrt((p * p).sum() * (t * t).sum())
    r = float((p * t).sum() / scale) if scale > 0 else float("nan")  # undefined for a constant opening
    return {"lmd_px": float(lip_distances(predicted, true, face_size).mean()), "mouth_open_r": r}


# sync_offset_frames looks this many frames either way: a third of a second at 30 fps.
MAX_LAG = 10


def lag_correlations(asked: np.ndarray, real: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """(2 max_lag + 1,) Pearson r of the opening asked for k frames later against the real one,
    asked[t + k] against real[t], for k = -max_lag .. max_lag over the t where both are finite; NaN where
    it is undefined (a constant, too few frames)."""
    asked, real = np.asarray(asked, np.float64), np.asarray(real, np.float64)
    curve = np.full(2 * max_lag + 1, np.nan)
    for i, k in enumerate(range(-max_lag, max_lag + 1)):
        a, r = (asked[k:], real[: len(real) - k]) if k >= 0 else (asked[: len(asked) + k], real[-k:])
        ok = np.isfinite(a) & np.isfinite(r)
        if ok.sum() >= 3 and a[ok].std() > 0 and r[ok].std() > 0:
            curve[i] = np.corrcoef(a[ok], r[ok])[0, 1]
    return curve


def sync_offset(curves: list[np.ndarray], weights: list[float]) -> float:
    """sync_offset_frames: the lag k (lag_correlations' order) at which the weighted mean of several
    speakers' curves peaks. 0 is in sync; k > 0: the opening asked for comes k frames after the real one
    (late), k < 0: before it (early). NaN when no curve is defined."""
    curves, weights = np.asarray(curves, np.float64), np.asarray(weights, np.float64)[:, None]
    known = np.isfinite(curves)
    total = (np.where(known, curves, 0) * weights).sum(0) / np.maximum((known * weights).sum(0), 1e-12)
    if not known.any():
        return float("nan")
    total[~known.any(0)] = -np.inf
    return float(np.argmax(total) - (len(total) - 1) // 2)


def closed_mouth(asked: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(closed_gap, closed_std): the mean opening asked for over a silent stretch less the speaker's
    closed-mouth opening (the CLOSED_QUANTILE of their real openings): at most 0 is within their
    closed-mouth range; and how much the asked opening moves there (its std). In the openings' units."""
    closed = np.nanquantile(np.asarray(real, np.float64), CLOSED_QUANTILE)
    asked = np.asarray(asked, np.float64)
    return float(asked.mean() - closed), float(asked.std())


def lstm_metrics(
    predicted: np.ndarray, true: np.ndarray, lips_std: np.ndarray, face_size: int, lip_indices: list[int]
) -> dict:
    """lstm/val_loss (MSE of the z-scored lips: the mean cancels in the difference), lmd_px, mouth_open_r."""
    val_loss = float(np.mean(((predicted - true) / lips_std) ** 2))
    return {"lstm/val_loss": val_loss, **lip_metrics(predicted, true, face_size, lip_indices)}


def redetected_lmd(found: np.ndarray, asked: np.ndarray, face_size: int) -> tuple[float, float]:
    """(lmd_px over the frames where dlib found a face, share of frames where it did) for lips found
    by tasks.rows.landmarks.landmarks_in_crops (NaN rows: no face) against the lips asked for."""
    ok = ~np.isnan(found[:, 0])
    if not ok.any():
        return float("nan"), 0.0
    return float(lip_distances(found[ok], asked[ok], face_size).mean()), float(ok.mean())


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


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined metric (a constant's r, no face found) is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


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
