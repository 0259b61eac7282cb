"""Metrics of a painted lower face that a smear cannot pass (ARCHITECTURE.md, Metrics), on held-out
frames each driven by its own true lips, composites against the real frames:

- mouth_psnr, mouth_ssim: inside the lower-face mask (the compositing mask made hard,
  models/networks/unet.py: HARD_FROM). SSIM is scikit-image's Gaussian-window map over the mask's
  bounding box (padded by the window's radius, so a pixel at the mask's edge is judged with its
  real surroundings), averaged inside the mask. A blur keeps the colours and loses the structure:
  SSIM sees that where PSNR forgives it.
- flicker: the mean frame-to-frame absolute change inside the mask over the real video's over the
  same pixels (1.0: as lively as the real mouth; a smear that boils is above, a frozen one below).
- sharpness: the mean gradient magnitude inside the mask over the real frames' (1.0: as crisp as the
  real mouth; a smear is below). Not a target of ARCHITECTURE.md yet: a blurred copy of the true
  frame, posed exactly, passes PSNR and SSIM over the lower face better than a real mouth of another
  frame; this says what they forgive.
- full_lmd_px / dlib_floor_px: dlib run on full frames (models/evaluation/composite_metrics.py:
  lips_in_crop), its lips in crop pixels against the lips asked for; on the real frames against
  their own table lips, that is the floor no painting can go under (dlib's own noise).

Images are (S, S, 3) uint8 crops (or full frames, with masks of their size); masks are the soft
compositing mask (floats in [0, 1]) or a hard one (bool or {0, 1}).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from skimage.metrics import structural_similarity

from models.evaluation.composite_metrics import gradient, lips_in_crop
from models.evaluation.metrics import MIN_MSE
from models.networks.unet import HARD_FROM
from models.training.lip_metrics import redetected_lmd

SSIM_SIGMA = 1.5  # Wang et al.'s Gaussian window
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scikit-image's window at that sigma: 2 * radius + 1 wide


def inside(mask: np.ndarray) -> np.ndarray:
    """The hard region of a soft or hard mask, as bool."""
    return np.asarray(mask) >= HARD_FROM


def mouth_psnr(image: np.ndarray, real: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB) of `image` vs `real` over the pixels inside `mask`; at most 48.1 dB, an error under one
    grey level (models/evaluation/metrics.py: MIN_MSE), so that a mean over frames stays finite."""
    region = inside(mask)
    error = np.mean((image[region].astype(np.float64) - real[region]) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, MIN_MSE * 255.0**2)))


def mouth_ssim(image: np.ndarray, real: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of `image` vs `real` (the mean of the channels' maps) averaged over the pixels inside
    `mask`, computed on the mask's bounding box padded by the window's radius; 1.0 when equal."""
    region = inside(mask)
    rows, columns = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if not len(rows):
        raise ValueError("mouth_ssim: the mask is empty")
    y0, x0 = max(rows[0] - SSIM_RADIUS, 0), max(columns[0] - SSIM_RADIUS, 0)
    y1, x1 = rows[-1] + 1 + SSIM_RADIUS, columns[-1] + 1 + SSIM_RADIUS
    box = np.s_[y0:y1, x0:x1]
    _, full = structural_similarity(real[box], image[box], channel_axis=2, data_range=255,
                                    gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                                    full=True)
    return float(full.mean(2)[region[box]].mean())


def mouth_scores(images: np.ndarray, reals: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """mouth_psnr and mouth_ssim of each frame, means over the frames."""
    return {
        "mouth_psnr": float(np.mean([mouth_psnr(i, r, m) for i, r, m in zip(images, reals, masks)])),
        "mouth_ssim": float(np.mean([mouth_ssim(i, r, m) for i, r, m in zip(images, reals, masks)])),
    }


def flicker(frames: np.ndarray, masks: np.ndarray, real_frames: np.ndarray) -> float:
    """Mean |frame t - frame t-1| inside both frames' masks, over the same of the real frames: 1.0 is
    natural; NaN with fewer than two frames or a real video that does not change there. Frames are
    consecutive, (N, H, W, 3) uint8 each with its mask (N, H, W)."""
    ours = real = 0.0
    for t in range(1, len(frames)):
        region = inside(masks[t]) & inside(masks[t - 1])
        ours += np.abs(frames[t][region].astype(np.float64) - frames[t - 1][region]).sum()
        real += np.abs(real_frames[t][region].astype(np.float64) - real_frames[t - 1][region]).sum()
    return float(ours / real) if real > 0 else float("nan")


def sharpness(frames: np.ndarray, masks: np.ndarray, real_frames: np.ndarray) -> float:
    """Mean gradient magnitude (Sobel, grey) inside each frame's mask over the real frames' there."""
    ours = real = 0.0
    for frame, mask, true in zip(frames, masks, real_frames):
        region = inside(mask)
        ours += float(gradient(frame)[region].sum())
        real += float(gradient(true)[region].sum())
    return ours / real if real > 0 else float("nan")


def redetected_lips(frames: Iterable[np.ndarray], crops: np.ndarray, lip_indices: list[int],
                    face_size: int) -> np.ndarray:
    """(N, LIPS_DIM) the lips dlib finds on each full frame, in [0, 1] of its row's crop (`crops`:
    (N, 2, 3), source pixels -> crop pixels); NaN rows where it finds no face."""
    found = np.full((len(crops), 2 * len(lip_indices)), np.nan, np.float32)
    for index, (frame, crop) in enumerate(zip(frames, crops)):
        lips = lips_in_crop(frame, crop, lip_indices, face_size)
        if lips is not None:
            found[index] = lips
    return found


def full_lmd_px(found: np.ndarray, asked: np.ndarray, face_size: int) -> float:
    """The mean distance (crop pixels) of the lips dlib found on composited frames (`redetected_lips`)
    from those they were driven by, over the frames where it found a face (NaN: none)."""
    return redetected_lmd(found, np.asarray(asked), face_size)[0]


def dlib_floor_px(real_frames: Iterable[np.ndarray], crops: np.ndarray, table_lips: np.ndarray,
                  lip_indices: list[int], face_size: int) -> float:
    """full_lmd_px of the real frames against their own frame-table lips: dlib's noise, the floor of
    full_lmd_px (the table's lips come from tracking and a smoothed crop; these from a fresh
    detection on the frame)."""
    return full_lmd_px(redetected_lips(real_frames, crops, lip_indices, face_size), table_lips, face_size)
