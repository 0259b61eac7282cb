"""The soft mask of the lower face in an aligned crop (ARCHITECTURE.md, Rendering): the region the
frame generator paints (models/networks/unet.py: hard_mask, where it is at least HARD_FROM) and the alpha
compositing blends a generated face into its frame with (models/rendering/composite.py).

The jaw line from cheek to cheek, closed along the base of the nose, the jaw pushed down so that a
generated chin lower than the real one is still inside (and only a little sideways: hair, earrings and the
background beside the cheeks stay the frame's own), feathered by a Gaussian whose width is a share of
the face (the crop is scaled to the face, so a fixed width in crop pixels is proportional to the face in
the frame), and brought to 0 at the crop's edge.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Lower face: dlib's jaw points 2..14 (cheek, chin, cheek), then back along the nose base 35..31.
JAW = list(range(2, 15))
NOSE_BASE = [35, 34, 33, 32, 31]
# The jaw is pushed away from the mouth by JAW_MARGIN of the face size where it runs below the mouth (an
# opened generated mouth drops its chin below the real one, which must not show as a second chin), by
# SIDE_MARGIN where it runs beside it (a cheek does not widen as the mouth moves; pushed further, the mask
# takes in hair, earrings and background that the generator repaints softer), and in between by the
# downward share of the direction.
JAW_MARGIN = 0.06
SIDE_MARGIN = 0.015
# What the metrics measure (models/evaluation): the lower face with the jaw pushed JAW_MARGIN every way
# (the mask before SIDE_MARGIN), fixed, so that a narrower mask is scored on the same pixels.
MEASURED_SIDE_MARGIN = JAW_MARGIN
# Feathering: Gaussian sigma as a share of the face size (5 px at 128: MuseTalk feathers ~10%).
FEATHER = 0.04
# The mask is forced to 0 over this many crop pixels at the crop's edge, so the warped mask never
# ends in a step where the crop ends.
EDGE = 3
# Masks kept, by their landmarks and size: a render asks for each target frame's twice (the generator's hard
# mask, then compositing), and again each time the footage loops back; 64 at 256 px is 16 MB.
MASKS_KEPT = 64


def _blur_sigma(size: int) -> float:
    return FEATHER * size


def lower_face_polygon(landmarks: np.ndarray, size: int, side: float = SIDE_MARGIN) -> np.ndarray:
    """(18, 2) float32 polygon of the lower face in crop pixels, the jaw pushed out by JAW_MARGIN
    downwards and `side` sideways (crop y grows downwards)."""
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 2)
    jaw, nose = landmarks[JAW], landmarks[NOSE_BASE]
    centre = landmarks[48:68].mean(0)  # the mouth
    away = jaw - centre
    away /= np.linalg.norm(away, axis=1, keepdims=True) + 1e-6
    share = side + (JAW_MARGIN - side) * np.clip(away[:, 1:], 0, 1)
    return np.vstack([jaw + share * size * away, nose]).astype(np.float32)


def lower_face_mask(landmarks: np.ndarray, size: int, side: float = SIDE_MARGIN) -> np.ndarray:
    """(size, size) float32 alpha in [0, 1]: 1 inside the lower face, feathered at its border,
    0 at the crop's edge. `landmarks` are the frame table's, in crop pixels; `side` the jaw's margin
    beside the mouth (MEASURED_SIDE_MARGIN: the region the metrics measure). Read-only: the same array
    comes back for the same landmarks, size and side (MASKS_KEPT of them)."""
    points = np.ascontiguousarray(landmarks, np.float32).reshape(-1, 2)
    return _mask(points.tobytes(), len(points), int(size), float(side))


@lru_cache(maxsize=MASKS_KEPT)
def _mask(points: bytes, count: int, size: int, side: float) -> np.ndarray:
    polygon = lower_face_polygon(np.frombuffer(points, np.float32).reshape(count, 2), size, side)
    sigma = _blur_sigma(size)
    mask = np.zeros((size, size), np.float32)
    # Only the polygon's box and the blur's reach are made: beyond them the mask is 0 before and after
    # blurring, so this is the whole crop's mask (tests/test_composite.py), for less work.
    reach = (round(sigma * 4 * 2 + 1) | 1) // 2  # OpenCV's kernel radius for a float image
    (x0, y0) = np.maximum(np.floor(polygon.min(0)).astype(int) - 1 - reach, 0)
    (x1, y1) = np.minimum(np.ceil(polygon.max(0)).astype(int) + 2 + reach, size)
    if x1 > x0 and y1 > y0:
        box = mask[y0:y1, x0:x1]
        corners = np.round((polygon - (x0, y0)) * 16).astype(np.int32)
        cv2.fillPoly(box, [corners], 1.0, cv2.LINE_AA, shift=4)  # 4 fraction bits
        box[:] = cv2.GaussianBlur(box, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / EDGE, 0, 1).astype(np.float32)
        np.clip(box, 0.0, 1.0, out=box)  # the blur's rounding overshoots 1
        box *= ramp[y0:y1, None] * ramp[None, x0:x1]
    mask.flags.writeable = False
    return mask
