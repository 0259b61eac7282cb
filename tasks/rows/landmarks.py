"""dlib's face detector and 68-point shape predictor, loaded once per thread.

The models ship inside the `face_recognition_models` PyPI package. Its folder is located
with importlib rather than by importing it: its import needs `pkg_resources`, which new
setuptools no longer ship.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path

import cv2
import dlib
import numpy as np

# dlib's shape predictor finds this many (x, y) landmarks; preprocess.lip_indices keeps LIP_POINTS of them.
POINTS = 68
LIP_POINTS = 8
# Widths of the frame table's `landmarks` and `lips` columns: the points' (x, y), flat.
LANDMARKS_DIM = 2 * POINTS
LIPS_DIM = 2 * LIP_POINTS
# Inner-lip top and bottom centre of dlib's 68 points: their gap is the mouth opening.
INNER_TOP, INNER_BOTTOM = 62, 66
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
MOUTH = slice(48, 68)

_local = threading.local()


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face_recognition_models package is not installed (make setup installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def detector() -> dlib.fhog_object_detector:
    if not hasattr(_local, "detector"):
        _local.detector = dlib.get_frontal_face_detector()
    return _local.detector


def predictor() -> dlib.shape_predictor:
    if not hasattr(_local, "predictor"):
        path = models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.exists():
            raise RuntimeError(f"{path}: dlib's 68-point model is missing")
        _local.predictor = dlib.shape_predictor(str(path))
    return _local.predictor


def detect(image: np.ndarray, upsample: int = 0) -> list[dlib.rectangle]:
    """Face rectangles in an RGB or grey uint8 image, largest first."""
    return detect_scored(image, upsample)[0]


def detect_scored(image: np.ndarray, upsample: int = 0) -> tuple[list[dlib.rectangle], float]:
    """As detect, and the highest of HOG's scores for them (-inf when there is none): how
    sure it is of its best face, comparable between images of one face shown differently."""
    rects, scores, _ = detector().run(image, upsample, 0.0)
    order = sorted(range(len(rects)), key=lambda i: rects[i].width() * rects[i].height(), reverse=True)
    return [rects[i] for i in order], max(scores, default=-math.inf)


def shape(image: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
    """The 68 (x, y) landmarks of the face in `rect`, float32 of shape (68, 2)."""
    points = predictor()(image, rect)
    return np.array([(p.x, p.y) for p in points.parts()], dtype=np.float32)


def find_landmarks(image: np.ndarray, upsample: int = 0) -> np.ndarray | None:
    """Landmarks of the largest face, or None when there is no face."""
    rects = detect(image, upsample)
    return shape(image, rects[0]) if rects else None


def landmarks_in_crops(faces: np.ndarray, lip_indices: list[int], upscale: int = 2) -> np.ndarray:
    """dlib run again on aligned face crops (N, S, S, 3): the lips it finds, (N, 16) in [0, 1]
    of the crop, NaN where it finds no face. Crops are upscaled first: at 128 px a face is
    near the smallest HOG detects."""
    size = faces.shape[1]
    lips = np.full((len(faces), 2 * len(lip_indices)), np.nan, np.float32)
    for i, face in enumerate(faces):
        big = cv2.resize(face, (size * upscale, size * upscale), interpolation=cv2.INTER_LINEAR)
        found = find_landmarks(big, upsample=0)
        if found is not None:
            lips[i] = (found[lip_indices] / (size * upscale)).reshape(-1)
    return lips


def mouth_drop(landmarks: np.ndarray) -> float:
    """How far below the line of the eyes the mouth's centre lies, in eye distances, in the
    landmarks' own pixels: less than a frontal face's on a face squashed in the picture."""
    left, right = landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0)
    across = right - left
    down = np.array([-across[1], across[0]])  # the eye line turned a quarter, pointing chinwards
    return float(np.dot(landmarks[MOUTH].mean(0) - (left + right) / 2, down) / np.dot(across, across))


def lips_opening(lips: np.ndarray, lip_indices: list[int]) -> np.ndarray:
    """The mouth opening per frame: the inner-lip gap (point INNER_TOP to INNER_BOTTOM) of (frames, 16)
    or (frames, 8, 2) lips, in the lips' own units ([0, 1] of the crop for the frame table's lips)."""
    points = np.asarray(lips).reshape(len(lips), LIP_POINTS, 2)
    top, bottom = list(lip_indices).index(INNER_TOP), list(lip_indices).index(INNER_BOTTOM)
    return np.linalg.norm(points[:, bottom] - points[:, top], axis=1)
