"""The lip metrics of ARCHITECTURE.md ("Metrics") as functions of arrays: what training logs as it goes
(train_lstm's lmd_px and mouth_open_r, its held-out speakers' sync offset and closed mouth; train_cgan's
gen_lmd_px) and evaluation reports beside its image metrics (models/evaluation/metrics.py).

Lips are (frames, 16) in [0, 1] of the crop.
"""

from __future__ import annotations

import numpy as np

from models.training.lips import CLOSED_QUANTILE
from tasks.rows.landmarks import LIP_POINTS, lips_opening


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


def redetected_lmd(found: np.ndarray, asked: np.ndarray, face_size: int) -> tuple[float, float]:
    """(lmd_px over the frames where dlib found a face, share of frames where it did) for lips found
    by tasks.rows.landmarks.landmarks_in_crops (NaN rows: no face) against the lips asked for."""
    ok = ~np.isnan(found[:, 0])
    if not ok.any():
        return float("nan"), 0.0
    return float(lip_distances(found[ok], asked[ok], face_size).mean()), float(ok.mean())
