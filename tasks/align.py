"""The per-frame face stage: find one face per video, follow it, and align it to a fixed crop.

HOG detection of a whole frame costs ~10x the 68-point shape predictor, so it runs (on a
frame downscaled to detect_width) only for the first face and when tracking looks lost;
every `detect_every` frames a cheaper detection in a window around the tracked face
confirms it. In between, the predictor starts from a box derived from the previous frame's
landmarks, placed the way the last detection placed its box relative to its landmarks, so
the predictor sees the boxes the detector would have given it: tracking costs no accuracy.

The crop is a similarity transform from the eyes and nose (points that speech does not
move) to a fixed template, exponentially smoothed over time so it streams without jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from tasks import landmarks as lm
from tasks.params import PreprocessParams

# Eye centres, nose bridge and nose base, placed in units of face_size so that brows, jaw
# and an open mouth's chin fit with a margin (measured on real and demo faces: the face
# spans about 2.6 inter-ocular distances each way, the chin is 1.75 below the eyes).
TEMPLATE = np.array([[0.35, 0.30], [0.65, 0.30], [0.50, 0.375], [0.50, 0.50]], np.float32)

# A tracked face is distrusted when its scale or position jumps more than this between
# frames, or when its crop stops looking like the previous frame's crop: the normalised
# cross-correlation of consecutive 16x16 grey crops stays above 0.9 on a real talking head
# (blinks, turns and speech included) and falls below 0.65 for a crop 60 px off the face.
MAX_SCALE_STEP = 1.25
MAX_JUMP = 0.5  # of the anchor spread, about 20 px a frame for a 512 px talking head
MIN_LIKENESS = 0.8
_LIKENESS_SIZE = 16
# Scheduled detections search a window ROI_SIDE tracked boxes wide, scaled so the face is
# ROI_FACE px: the detector's window is 80 px and its pyramid steps by 5/6.
ROI_SIDE = 1.6
ROI_FACE = 100
# Scheduled detections that may miss in a row (HOG misses turned faces) before a face that
# still tracks plausibly is dropped anyway.
MAX_MISSES = 2
# A transform this far (in face_size units, at the template anchors) from the smoothed one
# is a new shot or a new face: smoothing restarts instead of sliding across.
RESET_DISTANCE = 0.1


@dataclass
class AlignedFrame:
    face_found: bool
    landmarks: np.ndarray  # (68, 2) float32 in crop pixels; NaN when no face
    lips: np.ndarray  # (16,) float32: (x, y) of preprocess.lip_indices over face_size; NaN when no face
    face: np.ndarray  # (face_size, face_size, 3) uint8 RGB aligned crop
    crop: np.ndarray  # (2, 3) float32 affine, source-frame pixels -> crop pixels


def _averaging(groups: list[slice]) -> np.ndarray:
    weights = np.zeros((len(groups), 68), np.float32)
    for row, group in enumerate(groups):
        weights[row, group] = 1.0 / len(range(68)[group])
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


def _frame_of(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and spread (RMS distance from the centre) of the anchors: where and how big the face is."""
    centre = points.mean(0)
    offsets = points - centre
    return centre, math.sqrt(float(np.vdot(offsets, offsets)) / len(points))


def _small_grey(face: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm grey thumbnail: the dot product of two is their correlation."""
    grey = cv2.cvtColor(
        cv2.resize(face, (_LIKENESS_SIZE, _LIKENESS_SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    grey = grey.astype(np.float32)
    grey -= grey.mean()
    return grey / (np.linalg.norm(grey) + 1e-6)


class FaceTracker:
    """Call once per frame, in order: a uint8 frame in, AlignedFrame out.

    A frame is RGB (H, W, 3) or I420 (H * 3 // 2, W), as tasks.decode.iter_frames yields it
    with pix_fmt "yuv420p". I420 saves the decoder's colour conversion: detection and the
    shape predictor read its Y plane (grey, at no cost), and only the crop is turned into
    RGB, after warping each plane at its own resolution.
    """

    def __init__(self, params: PreprocessParams, detect_every: int | None = None):
        self.size = params.face_size
        self.detect_every = detect_every or params.detect_every
        self.detect_width = params.detect_width
        self.smoothing = params.crop_smoothing
        self.lip_indices = np.asarray(params.lip_indices)
        self.template = TEMPLATE * self.size
        self.detections = 0
        self.source_landmarks: np.ndarray | None = None
        self._since_detect = 0
        self._misses = 0
        # The last detection's box relative to its own landmarks' anchors: offset of its
        # centre and its half side, in anchor spreads.
        self._box_offset = np.zeros(2)
        self._box_half = 1.0
        # Centre and spread of the last face seen (kept while it is lost, to prefer the
        # face nearest it on re-detection).
        self._centre: np.ndarray | None = None
        self._spread = 0.0
        self._likeness: np.ndarray | None = None
        self._transform: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> AlignedFrame:
        # What HOG and the shape predictor read: the RGB frame, or the Y plane of an I420 one.
        image = frame if frame.ndim == 3 else frame[: frame.shape[0] * 2 // 3]
        self._since_detect += 1
        box = self._tracked_box()
        scheduled = box is None or self._since_detect >= self.detect_every
        found = self._detect(frame, image, around=box) if scheduled else None
        if found is None and box is not None:
            found = self._track(frame, image, box)
            if found is not None and scheduled:
                self._misses += 1
                if self._misses > MAX_MISSES:
                    found = None
            if found is None:
                found = self._detect(frame, image, around=None)
        if found is None:
            return self._no_face(frame, image)
        landmarks, self._centre, self._spread, transform, face = found
        self._transform = transform
        self.source_landmarks = landmarks
        crop_landmarks = apply(transform, landmarks)
        return AlignedFrame(
            face_found=True,
            landmarks=crop_landmarks,
            lips=(crop_landmarks[self.lip_indices] / self.size).reshape(-1),
            face=face,
            crop=transform.astype(np.float32),
        )

    def _tracked_box(self) -> dlib.rectangle | None:
        """Where the last detector would put its box around the previous frame's face."""
        if self.source_landmarks is None:
            return None
        centre = self._centre + self._box_offset * self._spread
        half = self._box_half * self._spread
        return dlib.rectangle(
            *(round(v) for v in (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half))
        )

    def _detect(self, frame: np.ndarray, image: np.ndarray, around: dlib.rectangle | None):
        """Landmarks, their centre and spread, transform and crop from a HOG detection; None
        when no (suitable) face.

        With `around`, only a window of ROI_SIDE boxes around the tracked face is searched,
        scaled so the face is ROI_FACE px wide: HOG's pyramid then covers just the scales a
        face that moved for detect_every frames can have, at a fraction of a whole frame's
        cost, and a larger face elsewhere cannot take over. Without it, the whole frame is
        searched at detect_width.
        """
        self._since_detect = 0
        self.detections += 1
        height, width = image.shape[:2]
        if around is None:
            left = top = 0
            region = image
            scale = min(1.0, self.detect_width / width)
        else:
            half = around.width() * ROI_SIDE / 2
            centre = around.center()
            left, top = max(0, round(centre.x - half)), max(0, round(centre.y - half))
            right, bottom = min(width, round(centre.x + half)), min(height, round(centre.y + half))
            if right - left < around.width() or bottom - top < around.height():
                return None  # the face has left the frame
            region = image[top:bottom, left:right]
            scale = min(1.0, ROI_FACE / around.width())
        if scale < 1.0:
            size = (round(region.shape[1] * scale), round(region.shape[0] * scale))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else np.ascontiguousarray(region)
        rects = [_to_frame(r, scale, left, top) for r in lm.detect(grey)]
        box = self._choose(rects)
        if box is None:
            return None
        self._misses = 0
        landmarks = lm.shape(image, box)
        points = anchors(landmarks)
        centre, spread = _frame_of(points)
        self._box_offset = (
            np.array([(box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2]) - centre
        ) / spread
        self._box_half = box.width() / 2 / spread
        transform, face = self._align(frame, points)
        self._likeness = _small_grey(face)
        return landmarks, centre, spread, transform, face

    def _choose(self, rects: list[dlib.rectangle]) -> dlib.rectangle | None:
        """The largest face at first, later the one nearest the face followed so far."""
        if not rects or self._centre is None:
            return rects[0] if rects else None
        return min(rects, key=lambda r: np.hypot(*(np.array([r.center().x, r.center().y]) - self._centre)))

    def _track(self, frame: np.ndarray, image: np.ndarray, box: dlib.rectangle):
        """As _detect, from the tracked box; None when implausible."""
        landmarks = lm.shape(image, box)
        points = anchors(landmarks)
        centre, spread = _frame_of(points)
        if not 1 / MAX_SCALE_STEP < spread / self._spread < MAX_SCALE_STEP:
            return None
        if np.linalg.norm(centre - self._centre) > MAX_JUMP * self._spread:
            return None
        transform, face = self._align(frame, points)
        likeness = _small_grey(face)
        if float((likeness * self._likeness).sum()) < MIN_LIKENESS:
            return None
        self._likeness = likeness
        return landmarks, centre, spread, transform, face

    def _align(self, frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transform from the anchors `points` to the template, smoothed over time, and the crop."""
        transform = similarity(points, self.template)
        previous = self._transform
        if (
            previous is not None
            and np.abs(apply(previous, points) - self.template).max() < RESET_DISTANCE * self.size
        ):
            transform = self.smoothing * previous + (1 - self.smoothing) * transform
        return transform, self._warp(frame, transform)

    def _warp(self, frame: np.ndarray, transform: np.ndarray) -> np.ndarray:
        if frame.ndim == 3:
            return _warp_plane(frame, transform, self.size)
        # I420 needs an even side; an odd face_size takes the top-left of one a pixel larger.
        side = self.size + self.size % 2
        height, width = frame.shape[0] * 2 // 3, frame.shape[1]
        luma = _warp_plane(frame[:height], transform, side)
        # A chroma sample sits at the centre of its 2x2 luma block (luma = 2 * chroma + 0.5)
        # in the frame and in the crop alike: same rotation and scale, shifted translation.
        chroma = transform.copy()
        chroma[:, 2] = (transform[:, 2] + 0.5 * transform[:, :2].sum(1) - 0.5) / 2
        u, v = (_warp_plane(plane, chroma, side // 2) for plane in frame[height:].reshape(2, height // 2, width // 2))
        i420 = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(side * 3 // 2, side)
        face = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
        return face if side == self.size else np.ascontiguousarray(face[: self.size, : self.size])

    def _no_face(self, frame: np.ndarray, image: np.ndarray) -> AlignedFrame:
        self.source_landmarks = None
        transform = self._transform
        if transform is None:
            # A centred square of the frame until a face has been seen.
            height, width = image.shape[:2]
            side = min(height, width)
            scale = self.size / side
            transform = np.array(
                [[scale, 0, -(width - side) / 2 * scale], [0, scale, -(height - side) / 2 * scale]]
            )
        nan = np.float32(np.nan)
        return AlignedFrame(
            face_found=False,
            landmarks=np.full((68, 2), nan, np.float32),
            lips=np.full(16, nan, np.float32),
            face=self._warp(frame, transform),
            crop=transform.astype(np.float32),
        )


def _warp_plane(plane: np.ndarray, transform: np.ndarray, side: int) -> np.ndarray:
    return cv2.warpAffine(plane, transform, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _to_frame(rect: dlib.rectangle, scale: float, left: int, top: int) -> dlib.rectangle:
    """A rectangle found in a region scaled by `scale`, back in frame pixels."""
    return dlib.rectangle(
        round(rect.left() / scale) + left,
        round(rect.top() / scale) + top,
        round(rect.right() / scale) + left,
        round(rect.bottom() / scale) + top,
    )
