"""What `reenact adapt` looks at in a clip before it trains (ARCHITECTURE.md, Adapted targets).

From the clip's own rows, as preprocessing made them (landmarks, crop transforms, crops: nothing is
detected again), per frame with a face:

    yaw        the head's turn in degrees: six landmarks (nose tip, chin, outer eye corners, mouth
               corners) fitted by cv2.solvePnP to a generic 3-D face, in the aligned crop (a similarity
               of the frame, so the turn is the frame's)
    face_px    the face's width in the frame's pixels (tasks/rows/crop.py: face_width)
    sharpness  the variance of the Laplacian over the face in its aligned crop at 128 px: motion blur,
               soft focus and a face too small for its crop all lower it

and the share of frames with a face. Adaptation does well on mostly frontal, sharp footage with the face
in view and big enough (docs/results.md): a problem in over `adapt.footage_share` of the frames
(`adapt.max_yaw`, `adapt.min_face_px`, `adapt.min_sharpness`; no face) is named in one line with its
frames, which adapt prints as a warning or, with --strict, refuses the clip with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tasks.config.params import AdaptParams, PreprocessParams
from tasks.ingest.video import frame_format
from tasks.rows.align import FaceTracker
from tasks.rows.crop import face_width
from tasks.rows.decode import iter_frames, probe
from tasks.table.shards import decode_crops, list_column_as_array, read_frames

# A generic face (mm-like units, nose tip at the origin, y up, z towards the camera) and the dlib
# landmarks of its points: nose tip, chin, outer eye corners, mouth corners.
FACE_3D = np.array([(0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0),
                    (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)])
FACE_POINTS = [30, 8, 36, 45, 48, 54]
SHARPNESS_SIZE = 128  # crops are measured at this size, whatever preprocess.face_size is
# the face in an aligned crop (tasks/rows/crop.py: TEMPLATE), brows to chin, little background
FACE_ROWS, FACE_COLUMNS = slice(round(0.2 * SHARPNESS_SIZE), round(0.85 * SHARPNESS_SIZE)), slice(26, 102)
ADVICE = {"turned": "mostly frontal footage", "small": "faces at least {min_face_px:g} px wide",
          "blurred": "sharp footage (no motion blur)", "no_face": "the face in view throughout"}


def face_px(path: Path, params: PreprocessParams, count: int = 8) -> float:
    """The median width in frame pixels of the face (tasks/rows/crop.py: face_width) in `count` frames
    spread over the clip `path`, each found afresh; 0.0 when none shows one: what adapt sizes a target's
    crops by (adapt.face_size auto), before the clip is preprocessed at that size."""
    info = probe(path)
    width, height, pix_fmt = frame_format(info)
    widths = []
    for image in iter_frames(path, count / max(info.duration, 1e-3), width=width, height=height,
                             pix_fmt=pix_fmt, info=info):
        aligned = FaceTracker(params, detect_every=1)(image)
        if aligned.face_found:
            widths.append(float(face_width(aligned.crop[None], params.face_size)[0]))
    return float(np.median(widths)) if widths else 0.0


def head_yaw(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N,) the head's turn in degrees (either way) of (N, 68, 2) landmarks in a crop of `size` px: a
    pinhole camera of focal length `size` centred on the crop."""
    camera = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float64)
    yaws = np.zeros(len(landmarks))
    for i, points in enumerate(np.asarray(landmarks, np.float64)):
        ok, rotation, _ = cv2.solvePnP(FACE_3D, points[FACE_POINTS], camera, None,
                                       flags=cv2.SOLVEPNP_ITERATIVE)
        matrix = cv2.Rodrigues(rotation)[0] if ok else np.eye(3)
        # the image's y points down, the model's up: the turn about the vertical axis is the same
        yaws[i] = np.degrees(np.arctan2(-matrix[2, 0], np.hypot(matrix[0, 0], matrix[1, 0])))
    return np.abs(yaws)


def sharpness(faces: np.ndarray) -> np.ndarray:
    """(N,) the variance of the Laplacian of each aligned crop's face (its middle, brows to chin), at
    SHARPNESS_SIZE px."""
    values = np.zeros(len(faces))
    for i, face in enumerate(faces):
        grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
        if grey.shape[0] != SHARPNESS_SIZE:
            grey = cv2.resize(grey, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
        values[i] = cv2.Laplacian(grey[FACE_ROWS, FACE_COLUMNS], cv2.CV_64F).var()
    return values


def frame_ranges(frames: np.ndarray, gap: int, most: int = 3) -> str:
    """`frames 40-210, 300-320`: the frame numbers as runs (a gap of up to `gap` frames joins two),
    the first `most` of them."""
    frames = np.sort(np.asarray(frames, int))
    cuts = np.flatnonzero(np.diff(frames) > gap + 1)
    starts, ends = frames[np.r_[0, cuts + 1]], frames[np.r_[cuts, len(frames) - 1]]
    runs = [f"{a}-{b}" if b > a else f"{a}" for a, b in zip(starts, ends, strict=True)]
    return "frames " + ", ".join(runs[:most]) + (", ..." if len(runs) > most else "")


@dataclass(frozen=True)
class Footage:
    """What adapt saw in a clip: `figures` (what target.json records) and `problems`, each
    (kind, the words naming it and its frames)."""

    figures: dict[str, float]
    problems: list[tuple[str, str]]

    def warning(self, adapt: AdaptParams) -> str:
        """One line naming every problem and its frames, and what works well; "" with none."""
        if not self.problems:
            return ""
        advice = ", ".join(ADVICE[kind].format(min_face_px=adapt.min_face_px) for kind, _ in self.problems)
        return f"footage: {'; '.join(said for _, said in self.problems)}; reenact works best on {advice}"


def _problem(kind: str, said: str, flagged: np.ndarray, frames: np.ndarray, of: int, fps: float,
             share: float) -> tuple[str, str] | None:
    if not of or flagged.sum() <= share * of:
        return None
    where = frame_ranges(frames[flagged], gap=max(1, round(fps / 2)))
    return kind, f"{said} in {where} ({flagged.sum() / of:.0%})"


def look_at(shards: Path, video_id: str, adapt: AdaptParams) -> Footage:
    """The footage checks of partition `video_id` of `shards` (its frame numbers at the table's fps)."""
    table = read_frames(shards, video_id, ["frame", "time", "face_found", "landmarks", "crop", "face"])
    found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
    frames, times = table.column("frame").to_numpy(), table.column("time").to_numpy()
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 30.0
    faces = decode_crops(table.column("face"), np.flatnonzero(found))
    size = faces.shape[1] if len(faces) else SHARPNESS_SIZE
    landmarks = list_column_as_array(table, "landmarks").reshape(-1, 68, 2)[found]
    yaw, sharp = head_yaw(landmarks, size), sharpness(faces)
    width = face_width(list_column_as_array(table, "crop")[found], size)
    seen, share, n = frames[found], adapt.footage_share, int(found.sum())
    turned, small, blurred = yaw > adapt.max_yaw, width < adapt.min_face_px, sharp < adapt.min_sharpness
    problems = [
        _problem("turned", f"head turned > {adapt.max_yaw:g}°", turned, seen, n, fps, share),
        _problem("small", f"face under {adapt.min_face_px:g} px wide", small, seen, n, fps, share),
        _problem("blurred", f"face blurred (sharpness < {adapt.min_sharpness:g})", blurred, seen, n, fps,
                 share),
        _problem("no_face", "no face found", ~found, frames, len(found), fps, share),
    ]
    median = (lambda values: round(float(np.median(values)), 1) if len(values) else None)
    share_of = (lambda flagged: round(float(flagged.mean()), 3) if n else None)
    figures = {
        "face_share": round(n / max(len(found), 1), 3), "yaw_median_deg": median(yaw),
        "turned_share": share_of(turned), "face_px_median": median(width), "small_share": share_of(small),
        "sharpness_median": median(sharp), "blurred_share": share_of(blurred),
    }
    return Footage(figures, [p for p in problems if p is not None])
