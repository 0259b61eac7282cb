"""The aligned crop's geometry: the template the eyes and nose are mapped to, the similarity
transform that does it, the crop it cuts from an RGB or I420 frame (one affine warp per
plane), and what a crop's scale says about the size of the face it was cut around."""

from __future__ import annotations

import cv2
import numpy as np

from tasks.rows import landmarks as lm

# Eye centres, nose bridge and nose base, placed in units of face_size so that brows, jaw
# and an open mouth's chin fit with a margin (measured on real and demo faces: the face
# spans about 2.6 inter-ocular distances each way, the chin is 1.75 below the eyes).
TEMPLATE = np.array([[0.35, 0.30], [0.65, 0.30], [0.50, 0.375], [0.50, 0.50]], np.float32)

# dlib's face box is 2.1-2.6 eye distances wide (the steps of HOG's pyramid): faces are
# reported at this width.
BOX_PER_EYES = 2.3

# Width of the frame table's `crop` column: the crop transform, a 2x3 affine (frame pixels -> crop
# pixels), flat.
CROP_DIM = 2 * 3


def _averaging(groups: list[slice]) -> np.ndarray:
    weights = np.zeros((len(groups), lm.POINTS), np.float32)
    for row, group in enumerate(groups):
        weights[row, group] = 1.0 / len(range(lm.POINTS)[group])
    return weights


# One matrix product per frame instead of four slice means: Python overhead is a visible
# share of a ~2 ms frame.
_ANCHOR_WEIGHTS = _averaging([lm.LEFT_EYE, lm.RIGHT_EYE, slice(27, 31), slice(31, 36)])


def anchors(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose bridge centre and nose base centre, (4, 2)."""
    return _ANCHOR_WEIGHTS @ landmarks


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


def face_width(crops: np.ndarray, face_size: int) -> np.ndarray:
    """Width in frame pixels of the face box (as dlib's detector draws it, ~BOX_PER_EYES eye
    distances) of faces cut by (N, 2, 3) crop transforms: the crop puts the eyes a fixed
    distance apart, so its scale says how big the face was in the frame."""
    crops = np.asarray(crops, np.float64).reshape(-1, 2, 3)
    eyes = (TEMPLATE[1, 0] - TEMPLATE[0, 0]) * face_size / np.hypot(crops[:, 0, 0], crops[:, 0, 1])
    return BOX_PER_EYES * eyes
