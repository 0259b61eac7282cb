"""Contact sheets: aligned crops in a grid with their lip points drawn on, to eyeball a dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

LIP_COLOUR = (0, 255, 0)


def contact_sheet(faces: list[np.ndarray], lips: list[np.ndarray], out_png: Path, columns: int = 8) -> Path:
    """Save faces (RGB uint8, all one size) in rows of `columns`, each with its 16-D lips
    ((x, y) in [0, 1] of the crop; NaN draws nothing) marked. Returns out_png."""
    if not faces:
        raise ValueError("contact_sheet needs at least one face")
    if len(faces) != len(lips):
        raise ValueError(f"{len(faces)} faces but {len(lips)} lips")
    height, width = faces[0].shape[:2]
    rows = -(-len(faces) // columns)
    sheet = np.zeros((rows * height, min(columns, len(faces)) * width, 3), np.uint8)
    radius = max(1, round(width / 64))
    for i, (face, points) in enumerate(zip(faces, lips)):
        tile = np.ascontiguousarray(face, dtype=np.uint8).copy()
        for x, y in np.asarray(points, np.float32).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(
                    tile,
                    (round(float(x) * width), round(float(y) * height)),
                    radius,
                    LIP_COLOUR,
                    -1,
                    cv2.LINE_AA,
                )
        row, column = divmod(i, columns)
        sheet[row * height : (row + 1) * height, column * width : (column + 1) * width] = tile
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out_png)
    return out_png
