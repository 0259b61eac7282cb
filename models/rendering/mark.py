"""The watermark put on every frame a render writes (tasks/provenance/watermark.py; ARCHITECTURE.md,
Provenance: the mark): onto a generated face crop as it is, onto a full frame through the inverse of
the crop transform that composites the face, over the face's region only."""

from __future__ import annotations

import cv2
import numpy as np

from models.rendering.composite import _region, warp_back
from tasks.provenance.watermark import pattern, swing


class Marker:
    """Marks frames of one render with `mark_id`; frame i is shown at i / fps seconds."""

    def __init__(self, mark_id: int, fps: float):
        self.mark_id, self.fps = mark_id, fps

    def crop(self, face: np.ndarray, index: int) -> np.ndarray:
        """A copy of the (S, S, 3) uint8 aligned crop `face` (output frame `index`) with the mark."""
        delta = pattern(self.mark_id, face.shape[0]) * np.float32(swing(index / self.fps))
        return cv2.add(face, cv2.merge([delta] * 3), dtype=cv2.CV_8U)

    def frame(self, frame: np.ndarray, crop: np.ndarray, size: int, index: int) -> np.ndarray:
        """`frame` (H, W, 3) uint8, whose face the (2, 3) `crop` transform cuts as a size-px crop,
        with the mark over the face's region (in place when it can be; returned either way)."""
        crop = np.asarray(crop, np.float64).reshape(2, 3)
        region = _region(crop, size, frame.shape)
        if region is None:
            return frame
        delta = pattern(self.mark_id, size) * np.float32(swing(index / self.fps))
        warped = warp_back(delta, crop, region, cv2.INTER_LINEAR)
        x0, y0, x1, y1 = region
        frame = frame if frame.flags.writeable else frame.copy()
        patch = frame[y0:y1, x0:x1]
        patch[...] = cv2.add(patch, cv2.merge([warped] * 3), dtype=cv2.CV_8U)
        return frame
