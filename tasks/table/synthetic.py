"""A synthetic corpus in the frame-table format, for tests and benchmarks where no real one exists
(tests/, benchmarks/train.py): drawn faces whose mouths follow a random loudness, and audio features
made from that loudness. Written by the one writer of the frame table, tasks/table/shards.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simplejpeg

from tasks.config.params import PreprocessParams
from tasks.rows.features import feature_dim
from tasks.table.shards import CROP_DIM, LANDMARKS_DIM, LIPS_DIM, ShardWriter


def drawn_landmarks(lips: np.ndarray) -> np.ndarray:
    """dlib's 68 points (in [0, 1] of the crop) of the drawn head: the jaw on an ellipse inside it, fixed
    brows, eyes and nose, and the mouth from the 8 lip points (preprocess.lip_indices' default order:
    48, 50, 52, 54, 56, 58, 62, 66), the points between them halfway between their neighbours."""
    points = np.zeros((68, 2), np.float32)
    turn = np.arange(17) * np.pi / 16
    points[:17] = np.stack([0.5 - 0.36 * np.cos(turn), 0.45 + 0.5 * np.sin(turn)], 1)  # ear, chin, ear
    points[17:27] = np.stack([np.r_[np.linspace(0.22, 0.44, 5), np.linspace(0.56, 0.78, 5)],
                              np.full(10, 0.22)], 1)  # brows
    points[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.36, 0.52, 4)], 1)  # nose bridge
    points[31:36] = np.stack([np.linspace(0.44, 0.56, 5), np.full(5, 0.58)], 1)  # nose base
    for first, centre in ((36, 0.35), (42, 0.65)):  # eyes
        angle = np.arange(6) * np.pi / 3
        points[first : first + 6] = np.stack([centre - 0.05 * np.cos(angle), 0.3 + 0.02 * np.sin(angle)], 1)
    lips = np.asarray(lips, np.float32).reshape(8, 2)
    outer = lips[:6]
    points[48:60:2] = outer
    points[49:60:2] = (outer + np.roll(outer, -1, 0)) / 2
    inner = np.stack([outer[0], lips[6], outer[3], lips[7]])  # 60, 62, 64, 66
    points[60:68:2] = inner
    points[61:68:2] = (inner + np.roll(inner, -1, 0)) / 2
    return points


# The 8 lip points (preprocess.lip_indices' order) of a closed mouth, in [0, 1] of the crop.
CLOSED_LIPS = np.array(
    [[0.35, 0.72], [0.44, 0.69], [0.56, 0.69], [0.65, 0.72], [0.56, 0.76], [0.44, 0.76], [0.5, 0.71],
     [0.5, 0.73]],
    np.float32,
)


def _loudness(frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(frames,) float32 in [0, 1]: three sines of random phase, a smooth stand-in for speech."""
    t = np.arange(frames) / fps
    phases = rng.uniform(0, 2 * np.pi, 3)
    drive = (
        np.sin(2 * np.pi * 2.1 * t + phases[0])
        + 0.6 * np.sin(2 * np.pi * 3.7 * t + phases[1])
        + 0.3 * np.sin(2 * np.pi * 0.7 * t + phases[2])
    )
    return ((drive - drive.min()) / (np.ptp(drive) + 1e-9)).astype(np.float32)


def _lips_of(drive: float) -> np.ndarray:
    """(8, 2) lip points for a loudness in [0, 1]: the lower lip drops and the corners part."""
    lips = CLOSED_LIPS.copy()
    lips[[4, 5, 7], 1] += 0.12 * drive
    lips[[0, 3], 0] += np.array([-1, 1]) * 0.03 * drive
    return lips


def _face(lips: np.ndarray, size: int, tone: float) -> np.ndarray:
    """(size, size, 3) uint8: an oval head of skin `tone` whose dark mouth spans the lips."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    head = ((xx - 0.5) / 0.38) ** 2 + ((yy - 0.5) / 0.48) ** 2 < 1
    centre, half_height = (lips[6, 1] + lips[7, 1]) / 2, 0.01 + (lips[7, 1] - lips[6, 1]) / 2
    width = lips[3, 0] - lips[0, 0]
    mouth = ((xx - 0.5) / width * 2) ** 2 + ((yy - centre) / half_height) ** 2 < 1
    image = np.full((size, size, 3), 40, np.uint8)
    image[head] = (np.array([230, 180, 150]) * tone).astype(np.uint8)
    image[mouth] = (90, 20, 30)
    return image


def synthetic_shards(
    shards: str | Path,
    videos: int = 3,
    frames: int = 200,
    seed: int = 0,
    params: PreprocessParams | None = None,
) -> Path:
    """A small corpus in the frame-table format, for tests and benchmarks where no real one exists.

    A smooth random "loudness" per video drives the lips (mouth opening and width) and the
    audio features (a fixed random mix of it and its neighbours, plus noise); each face is a
    128x128 JPEG of a head whose dark mouth follows the lips, with its landmarks (`drawn_landmarks`).
    Every 25th frame has no face.
    """
    # Its audio is a random mix, not speech: the paper's 28 columns, no phones to decode.
    params = params or PreprocessParams(phones=False, words=False, whisper=False)
    size = params.face_size
    rng = np.random.default_rng(seed)
    dim = feature_dim(params)
    mix = rng.normal(size=(5, dim)).astype(np.float32)
    no_landmarks, no_lips = np.full(LANDMARKS_DIM, np.nan, np.float32), np.full(LIPS_DIM, np.nan, np.float32)
    for index in range(videos):
        drive = _loudness(frames, params.fps, rng)
        shifted = np.stack([np.roll(drive, s) for s in (-2, -1, 0, 1, 2)], axis=1)
        audio = shifted @ mix + 0.05 * rng.normal(size=(frames, dim)).astype(np.float32)
        tone = rng.uniform(0.6, 0.9)
        with ShardWriter(shards, f"synthetic_{index}", params, sha256=f"synthetic-{seed}-{index}") as writer:
            for i in range(frames):
                face_found = i % 25 != 24
                lips = _lips_of(drive[i])
                jpeg = simplejpeg.encode_jpeg(_face(lips, size, tone), quality=params.jpeg_quality,
                                              colorspace="RGB")
                writer.add(
                    frame=i,
                    time=i / params.fps,
                    face_found=face_found,
                    landmarks=(drawn_landmarks(lips) * size).reshape(-1) if face_found else no_landmarks,
                    lips=lips.reshape(-1) if face_found else no_lips,
                    audio=audio[i],
                    face=jpeg,
                    crop=np.zeros(CROP_DIM, np.float32),
                )
            writer.commit()
    return Path(shards)
