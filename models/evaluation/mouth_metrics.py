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
- teeth: on the frames whose real mouth is open (the inner-lip gap, dlib points 62-66, at least
  OPEN_FROM of the mouth's width, 48-54), the share of bright pixels inside the inner-lip polygon
  (points 60-67 of the real frame's landmarks), ours over the real frames' (1.0: as much teeth; a pale
  band or a dark hole is below). Bright is relative to each image's own skin, so a painting a shade
  darker all over is not counted as toothless: grey at least BRIGHT times the median grey of the
  lower face's skin (the hard mask less the outer-lip polygon grown by SKIN_MARGIN px). At 0.85 that
  takes the teeth of a lit mouth and of a dim one, and not the dark inside or the tongue (measured on
  may_5s, map_5s and speaker_15s of the real fixtures). NaN when no real frame shows any.
- detectability: models/evaluation/detectability.py (a classifier's accuracy, real against ours).
- full_lmd_px / dlib_floor_px: dlib run on full frames (models/evaluation/composite_metrics.py:
  lips_in_crop), its lips in crop pixels against the lips asked for; on the real frames against
  their own table lips, that is the floor no painting can go under (dlib's own noise).

Images are (S, S, 3) uint8 crops (or full frames, with masks of their size); masks are the soft
compositing mask (floats in [0, 1]) or a hard one (bool or {0, 1}).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from models.evaluation.composite_metrics import gradient, lips_in_crop
from models.evaluation.metrics import MIN_MSE
from models.networks.unet import HARD_FROM
from models.training.lip_metrics import redetected_lmd
from tasks.rows.landmarks import INNER_BOTTOM, INNER_TOP

SSIM_SIGMA = 1.5  # Wang et al.'s Gaussian window
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scikit-image's window at that sigma: 2 * radius + 1 wide
OUTER_LIPS, INNER_LIPS = slice(48, 60), slice(60, 68)  # dlib's 68 points: the lips' two contours
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
OPEN_FROM = 0.15  # teeth: a mouth is open when its inner gap is at least this share of its width
BRIGHT = 0.85  # teeth: a pixel is bright at this share of the median grey of the skin around the mouth
SKIN_MARGIN = 2  # px (at 128) kept between the lips and the skin whose brightness counts


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


def mouth_open(landmarks: np.ndarray) -> np.ndarray:
    """(N,) bool: which rows' mouths are open (inner gap at least OPEN_FROM of the mouth's width), from
    their landmarks (N, 68, 2)."""
    points = np.asarray(landmarks, np.float64)
    gap = np.linalg.norm(points[:, INNER_BOTTOM] - points[:, INNER_TOP], axis=1)
    width = np.linalg.norm(points[:, MOUTH_RIGHT] - points[:, MOUTH_LEFT], axis=1)
    return gap >= OPEN_FROM * width


def _polygon(points: np.ndarray, side: int) -> np.ndarray:
    region = np.zeros((side, side), np.uint8)
    cv2.fillPoly(region, [np.round(points * 4).astype(np.int32)], 1, shift=2)  # quarter-pixel vertices
    return region.astype(bool)


def bright_in_mouth(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(bright pixels, pixels) inside the inner-lip polygon of `landmarks` (68, 2) on `image`; bright:
    grey >= BRIGHT x the median grey of the skin (`mask`'s hard region less the outer lips, grown)."""
    side = image.shape[0]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    mouth = _polygon(landmarks[INNER_LIPS], side)
    margin = max(1, round(SKIN_MARGIN * side / 128))
    lips = cv2.dilate(_polygon(landmarks[OUTER_LIPS], side).astype(np.uint8),
                      np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)
    skin = inside(mask) & ~lips
    if not skin.any():
        raise ValueError("bright_in_mouth: no skin in the mask around the lips (is the mask this face's?)")
    bright = grey[mouth] >= BRIGHT * np.median(grey[skin])
    return int(bright.sum()), int(mouth.sum())


def teeth(frames: np.ndarray, masks: np.ndarray, real_frames: np.ndarray, landmarks: np.ndarray) -> float:
    """The bright share inside the inner lips of `frames` over that of `real_frames`, summed over the
    rows whose real mouth is open (`mouth_open` of the real `landmarks`, (N, 68, 2) crop pixels); NaN
    when none is open or no real one shows a bright pixel there."""
    ours = real = 0
    for index in np.flatnonzero(mouth_open(landmarks)):
        ours += bright_in_mouth(frames[index], landmarks[index], masks[index])[0]
        real += bright_in_mouth(real_frames[index], landmarks[index], masks[index])[0]
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
