"""The aligned crop's geometry: a similarity transform from landmarks to a template, and the
crop it cuts from an RGB or I420 frame, one affine warp per plane."""

from __future__ import annotations

import cv2
import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking src to dst, as a (2, 3) affine.

    Closed form in 2-D (Umeyama without reflection): deterministic, unlike cv2's robust
    estimators, so a still face gives the same transform on every frame.
    """
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    norm = float((s**2).sum())
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def warp(frame: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 RGB crop that `transform` (2x3, frame pixels -> crop pixels) cuts
    from an RGB (H, W, 3) or I420 (H * 3 // 2, W) frame.

    An I420 frame is warped plane by plane at each plane's own resolution and only the crop
    is turned into RGB: the whole frame never is.
    """
    if frame.ndim == 3:
        return _warp_plane(frame, transform, size)
    # I420 needs an even side; an odd size takes the top-left of one a pixel larger.
    side = size + size % 2
    height, width = frame.shape[0] * 2 // 3, frame.shape[1]
    luma = _warp_plane(frame[:height], transform, side)
    # A chroma sample sits at the centre of its 2x2 luma block (luma = 2 * chroma + 0.5)
    # in the frame and in the crop alike: same rotation and scale, shifted translation.
    chroma = transform.copy()
    chroma[:, 2] = (transform[:, 2] + 0.5 * transform[:, :2].sum(1) - 0.5) / 2
    planes = frame[height:].reshape(2, height // 2, width // 2)
    u, v = (_warp_plane(plane, chroma, side // 2) for plane in planes)
    i420 = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(side * 3 // 2, side)
    face = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    return face if side == size else np.ascontiguousarray(face[:size, :size])


def _warp_plane(plane: np.ndarray, transform: np.ndarray, side: int) -> np.ndarray:
    return cv2.warpAffine(plane, transform, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
