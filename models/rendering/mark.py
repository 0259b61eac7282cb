"""The watermark put on every frame a render writes (tasks/provenance/watermark.py, read back by
tasks/provenance/mark_reader.py; ARCHITECTURE.md, Provenance: the mark): onto a generated face crop,
or onto a full frame over the face's region, always placed where a reader aligning that frame's own
face will look.

The frame table's crop transform is smoothed over time (tasks/rows/align.py), so on a moving head the
face sits a little off the template in its crop; a reader aligns each frame afresh from its landmarks.
The mark therefore goes through the frame's own, unsmoothed alignment: the row's landmarks (crop
pixels) mapped onto the template (`aligned`)."""

from __future__ import annotations

import cv2
import numpy as np

from models.rendering.composite import _region, warp_back
from tasks.provenance.watermark import pattern, swing
from tasks.rows.crop import TEMPLATE, anchors, similarity


def aligned(landmarks: np.ndarray | None, size: int) -> np.ndarray:
    """(2, 3): crop pixels -> the crop the face's own landmarks would give (identity without them)."""
    points = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 2)
    if points is None or not np.isfinite(points).all():
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return similarity(anchors(points), TEMPLATE.astype(np.float64) * size)


def _then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The affine `second` after `first`, both (2, 3)."""
    return np.hstack([second[:, :2] @ first[:, :2], second[:, :2] @ first[:, 2:] + second[:, 2:]])


class Marker:
    """Marks frames of one render with `mark_id`; frame i is shown at i / fps seconds."""

    def __init__(self, mark_id: int, fps: float):
        self.mark_id, self.fps = mark_id, fps

    def _delta(self, size: int, index: int) -> np.ndarray:
        return pattern(self.mark_id, size) * np.float32(swing(index / self.fps))

    def crop(self, face: np.ndarray, index: int, landmarks: np.ndarray | None = None) -> np.ndarray:
        """A copy of the (S, S, 3) uint8 aligned crop `face` (output frame `index`) with the mark;
        `landmarks`: the face's 68 points in crop pixels, when known."""
        size = face.shape[0]
        delta = self._delta(size, index)
        fix = aligned(landmarks, size)
        if not np.allclose(fix, np.eye(2, 3)):
            delta = cv2.warpAffine(delta, fix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        return cv2.add(face, cv2.merge([delta] * 3), dtype=cv2.CV_8U)

    def frame(
        self, frame: np.ndarray, crop: np.ndarray, size: int, index: int, landmarks: np.ndarray | None = None
    ) -> np.ndarray:
        """`frame` (H, W, 3) uint8, whose face the (2, 3) `crop` transform cuts as a size-px crop (its
        68 `landmarks` in crop pixels), with the mark over the face's region (in place when it can
        be; returned either way)."""
        transform = _then(np.asarray(crop, np.float64).reshape(2, 3), aligned(landmarks, size))
        region = _region(transform, size, frame.shape)
        if region is None:
            return frame
        warped = warp_back(self._delta(size, index), transform, region, cv2.INTER_LINEAR)
        x0, y0, x1, y1 = region
        frame = frame if frame.flags.writeable else frame.copy()
        patch = frame[y0:y1, x0:x1]
        patch[...] = cv2.add(patch, cv2.merge([warped] * 3), dtype=cv2.CV_8U)
        return frame
