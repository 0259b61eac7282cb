"""The held-out rows' full frames in evals/realface.py: decoded as preprocessing decodes them, the
paintings composited into them as a render composites them, dlib run on those composites
(`full_frame_lmd`), and the contact sheet of the lower faces cut out of them at the frame's own pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from models.evaluation.baselines import FaceRows
from models.evaluation.mouth_metrics import full_lmd_px, redetected_lips
from models.rendering.composite import composite
from tasks.rows.decode import iter_frames, probe
from tasks.table.shards import evenly_spaced
from tasks.table.sheet import contact_sheet

SHEET_ROWS = 6


def held_frames(clip: Path, held: FaceRows, fps: float) -> list[np.ndarray]:
    """The held-out rows' full frames, decoded as preprocessing decodes them (square pixels)."""
    width, height = probe(clip).square_pixel_size()
    wanted, frames = set(held.frames.tolist()), []
    start = int(held.frames[0])
    for index, frame in enumerate(iter_frames(clip, fps, width=width, height=height, start=start), start):
        if index in wanted:
            frames.append(frame)
        if index >= held.frames[-1]:
            break
    return frames


def full_frame_lmd(frames: list[np.ndarray], faces: np.ndarray, held: FaceRows, indices: list[int]) -> float:
    """full_lmd_px of `faces` composited into the held-out full frames as a render composites them."""
    composites = (composite(frame, face, crop, points)[0]
                  for frame, face, crop, points in zip(frames, faces, held.crops, held.landmarks))
    return full_lmd_px(redetected_lips(composites, held.crops, indices, held.size), held.lips, held.size)


def lower_face_sheet(out: Path, frames: list[np.ndarray], held: FaceRows,
                     painters: dict[str, np.ndarray]) -> Path:
    """Rows: evenly spaced held-out frames; columns: real | ours | nearest | mean, each the lower face as
    the output shows it: composited into the full frame as a render composites it, and cut out of the
    frame at its own pixels (1:1, not enlarged from the crop); a method without figures is black."""
    picks = evenly_spaced(len(held), SHEET_ROWS)
    hard = held.hard_masks()
    boxes = np.array([frame_box(hard[i], held.crops[i]) for i in picks])  # x0, y0, x1, y1 in frame px
    width, height = (boxes[:, 2:] - boxes[:, :2]).max(0).astype(int)
    names = ("real", "ours", "nearest", "mean")
    tiles = [cv2.putText(np.zeros((height, width, 3), np.uint8), name, (8, height // 2),
                         cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA) for name in names]
    for i, box in zip(picks, boxes):
        frame = frames[i]
        x0 = int(np.clip(round((box[0] + box[2] - width) / 2), 0, frame.shape[1] - width))
        y0 = int(np.clip(round((box[1] + box[3] - height) / 2), 0, frame.shape[0] - height))
        for name in names:
            image = (frame if name == "real" else np.zeros_like(frame) if name not in painters
                     else composite(frame, painters[name][i], held.crops[i], held.landmarks[i])[0])
            tiles.append(image[y0 : y0 + height, x0 : x0 + width])
    return contact_sheet(tiles, [np.full(2, np.nan)] * len(tiles), out, columns=len(names))


def frame_box(mask: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """The box (x0, y0, x1, y1), frame pixels, around a crop's mask (crop: frame pixels -> crop pixels)."""
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    corners = np.array([(x, y) for x in (columns[0], columns[-1] + 1)
                        for y in (rows[0], rows[-1] + 1)], float)
    back = cv2.invertAffineTransform(np.asarray(crop, np.float64).reshape(2, 3))
    points = corners @ back[:, :2].T + back[:, 2]
    return np.concatenate([np.floor(points.min(0)), np.ceil(points.max(0))])
