"""The per-frame face stage: find one face per video, follow it, and align it to a fixed crop.

HOG detection of a whole frame costs ~10x the 68-point shape predictor, so it runs only
for the first face and when tracking looks lost; every `detect_every` frames a cheaper
detection in a window around the tracked face confirms it. In between, the predictor starts
from a box derived from the previous frame's landmarks, placed the way the last detection
placed its box relative to its landmarks, so the predictor sees the boxes the detector
would have given it: tracking costs no accuracy.

Faces of any size: HOG's window is 80 px, so a whole-frame search climbs a ladder of scales
when it finds nothing (the frame downscaled to detect_width, the full frame, the frame
upsampled 2x: faces down to ~40 px) and keeps the rung that found a face for the rest of
the video. Windows around a face are scaled so the face is ROI_FACE px, up or down. A face
that is lost is looked for first in a window around where it was. Faces squashed in the
picture itself (anamorphic video that lost its aspect flag) are shown to HOG restretched: by
the frame's shape until a face is found, then by the faces' own measure.

The crop is a similarity transform from the eyes and nose (points that speech does not
move) to a fixed template, exponentially smoothed over time so it streams without jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from tasks.config.params import PreprocessParams
from tasks.rows import landmarks as lm
from tasks.rows.crop import TEMPLATE, anchors, apply, similarity, warp

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
# The top of the ladder of whole-frame search scales, and the most a window around a small
# face is enlarged: HOG then finds faces of about 80 / UPSAMPLE px.
UPSAMPLE = 2.0
# A face lost since the last frame is looked for in a window this many face boxes wide
# around where it was, before the whole frame is searched.
LOST_SIDE = 3.0
# The mouth's centre lies this many eye distances below the line of the eyes on a frontal face
# in square pixels (1.03-1.14 over a real talking head). Well outside a natural range (pitch,
# faces differ) the picture itself is squashed or stretched, as in anamorphic video that
# lost its aspect flag, and HOG, which knows upright faces only, is shown it restretched.
MOUTH_DROP = 1.07
NATURAL_STRETCH = 1.3
# HOG finds faces squashed up to about HOG_SQUASH (nine real close-ups: all frames at 1.3, most
# at 1.4, half at 1.6). Shown square, upright faces in a 16:9 frame score 0.6-2.6 lower (at most
# 0.07 higher), faces squashed into it 0.8-2.9 higher: hence SQUARE_MARGIN (_or_square).
HOG_SQUASH = 1.4
SQUARE_MARGIN = 0.25
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

    A frame is RGB (H, W, 3) or I420 (H * 3 // 2, W), as tasks.rows.decode.iter_frames yields it
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
        # Whole-frame search scales (set by the first frame's width), the rung kept, and how
        # many more faceless frames pass before the rungs above it are tried again.
        self._ladder: list[float] = []
        self._rung = 0
        self._climb_wait = 0
        # The last detection's box relative to its own landmarks' anchors: offset of its
        # centre and its half side, in anchor spreads.
        self._box_offset = np.zeros(2)
        self._box_half = np.ones(2)  # half width, half height
        # How much taller than it is HOG is shown the picture (1: as it is), from recent faces.
        self._drops: list[float] = []
        self.stretch = 1.0
        # Centre and spread of the last face seen (kept while it is lost, to prefer the
        # face nearest it on re-detection and to search around it first).
        self._centre: np.ndarray | None = None
        self._spread = 0.0
        self._lost_for = 0
        self._likeness: np.ndarray | None = None
        self._transform: np.ndarray | None = None

    @property
    def scale(self) -> float:
        """The whole-frame search scale kept so far (1: full resolution, 2: upsampled)."""
        return self._ladder[self._rung] if self._ladder else 0.0

    def __call__(self, frame: np.ndarray) -> AlignedFrame:
        # What HOG and the shape predictor read: the RGB frame, or the Y plane of an I420 one.
        image = frame if frame.ndim == 3 else frame[: frame.shape[0] * 2 // 3]
        if not self._ladder:
            self._ladder = ladder(image.shape[1], self.detect_width)
        self._since_detect += 1
        box = self._tracked_box()
        scheduled = box is not None and self._since_detect >= self.detect_every
        found = self._adopt(frame, image, self._search_near(image, box, ROI_SIDE)) if scheduled else None
        if found is None and box is not None:
            found = self._track(frame, image, box)
            if found is not None and scheduled:
                self._misses += 1
                if self._misses > MAX_MISSES:
                    found = None
        if found is None:
            found = self._find(frame, image)
        if found is None:
            self._lost_for += 1
            return self._no_face(frame, image)
        self._lost_for = 0
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

    def _box_around(self, centre: np.ndarray) -> dlib.rectangle:
        """Where the last detector would put its box around a face whose anchors centre on `centre`."""
        centre = centre + self._box_offset * self._spread
        half = self._box_half * self._spread
        (left, top), (right, bottom) = centre - half, centre + half
        return dlib.rectangle(round(left), round(top), round(right), round(bottom))

    def _tracked_box(self) -> dlib.rectangle | None:
        """The detector's box around the previous frame's face; None when it had none."""
        return None if self.source_landmarks is None else self._box_around(self._centre)

    def _find(self, frame: np.ndarray, image: np.ndarray):
        """A face where none is tracked: around the last face first while it is freshly lost,
        then in the whole frame."""
        if self._centre is not None and self._lost_for < self.detect_every:
            near = self._search_near(image, self._box_around(self._centre), LOST_SIDE)
            found = self._adopt(frame, image, near)
            if found is not None:
                return found
        return self._adopt(frame, image, self._search_frame(image))

    def _search_frame(self, image: np.ndarray) -> list[dlib.rectangle]:
        """Faces in the whole frame, at the kept rung of the ladder, then the rungs above it.

        A rung up costs 4x the one below, so on a run of faceless frames the rungs above the
        kept one are tried once every detect_every frames: a face too small for the kept rung
        is still found within detect_every frames, and a video without faces stays cheap.
        The first search of a climb is weighed against the frame shown square (_or_square).
        """
        climb = self._climb_wait <= 0
        top = len(self._ladder) if climb else self._rung + 1
        for rung in range(self._rung, top):
            rects, score = self._hog(image, self._ladder[rung], 0, 0, self.stretch)
            if climb and rung == self._rung:
                rects, rung = self._or_square(image, rects, score, rung)
            if rects:
                self._rung, self._climb_wait = rung, 0
                return rects
        self._climb_wait = self.detect_every if climb else self._climb_wait - 1
        return []

    def _or_square(
        self, image: np.ndarray, rects: list[dlib.rectangle], score: float, rung: int
    ) -> tuple[list[dlib.rectangle], int]:
        """The faces found at `rung` (with `score`), or, when the frame's shape is more than
        HOG_SQUASH from the stretch in use, those found in the frame shown square at the first
        rung if they score SQUARE_MARGIN more. HOG misses faces of a picture squashed into the
        frame, or finds them weakly in boxes too square for the shape predictor to measure the
        squash; shown square they are found, and the stretch is measured afresh from them."""
        height, width = image.shape[:2]
        square = width / height
        if 1 / HOG_SQUASH < square / self.stretch < HOG_SQUASH:
            return rects, rung
        squared, squared_score = self._hog(image, self._ladder[0], 0, 0, square)
        if not squared or squared_score < score + SQUARE_MARGIN:
            return rects, rung
        self.stretch, self._drops = square, []
        return squared, 0

    def _search_near(self, image: np.ndarray, around: dlib.rectangle, side: float) -> list[dlib.rectangle]:
        """Faces in a window `side` boxes wide around `around`, scaled so a face of its size is
        ROI_FACE px: HOG's pyramid then covers just the scales a face that moved for a few
        frames can have, at a fraction of a whole frame's cost, and a larger face elsewhere
        cannot take over. Nothing when the face has left the frame."""
        height, width = image.shape[:2]
        half_x, half_y = around.width() * side / 2, around.height() * side / 2
        centre = around.center()
        left, top = max(0, round(centre.x - half_x)), max(0, round(centre.y - half_y))
        right, bottom = min(width, round(centre.x + half_x)), min(height, round(centre.y + half_y))
        if right - left < around.width() or bottom - top < around.height():
            return []
        scale = min(UPSAMPLE, ROI_FACE / around.width())
        return self._hog(image[top:bottom, left:right], scale, left, top, self.stretch)[0]

    def _hog(
        self, region: np.ndarray, scale: float, left: int, top: int, stretch: float
    ) -> tuple[list[dlib.rectangle], float]:
        """HOG's faces in `region` resized by `scale` (and `stretch` more in height), in frame
        pixels (region at left, top), and the best one's score."""
        self._since_detect = 0
        self.detections += 1
        scales = (scale, scale * stretch)
        if scales != (1.0, 1.0):
            size = (round(region.shape[1] * scales[0]), round(region.shape[0] * scales[1]))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else np.ascontiguousarray(region)
        rects, score = lm.detect_scored(grey)
        return [_to_frame(r, *scales, left, top) for r in rects], score

    def _adopt(self, frame: np.ndarray, image: np.ndarray, rects: list[dlib.rectangle]):
        """Landmarks, their centre and spread, transform and crop of the face chosen among
        detections; None when there is none."""
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
        self._box_half = np.array([box.width(), box.height()]) / 2 / spread
        self._measure_stretch(landmarks)
        transform, face = self._align(frame, points)
        self._likeness = _small_grey(face)
        return landmarks, centre, spread, transform, face

    def _measure_stretch(self, landmarks: np.ndarray) -> None:
        """Update `stretch` from the mouth's drop below the eyes in the last few detections."""
        self._drops = [*self._drops[-8:], lm.mouth_drop(landmarks)]
        # The landmarks are in frame pixels, so this is the picture's distortion whatever HOG was shown.
        factor = MOUTH_DROP / max(float(np.median(self._drops)), 1e-3)
        self.stretch = 1.0 if 1 / NATURAL_STRETCH < factor < NATURAL_STRETCH else factor

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
        return transform, warp(frame, transform, self.size)

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
            landmarks=np.full((lm.POINTS, 2), nan, np.float32),
            lips=np.full(lm.LIPS_DIM, nan, np.float32),
            face=warp(frame, transform, self.size),
            crop=transform.astype(np.float32),
        )


def _to_frame(rect: dlib.rectangle, scale_x: float, scale_y: float, left: int, top: int) -> dlib.rectangle:
    """A rectangle found in a region scaled by (scale_x, scale_y), back in frame pixels."""
    return dlib.rectangle(
        round(rect.left() / scale_x) + left,
        round(rect.top() / scale_y) + top,
        round(rect.right() / scale_x) + left,
        round(rect.bottom() / scale_y) + top,
    )


def ladder(width: int, detect_width: int) -> list[float]:
    """Whole-frame search scales for frames `width` px wide: detect_width, the full frame, then
    UPSAMPLE x. Each rung finds faces half the size of the one below (HOG's window is 80 px)."""
    first = min(1.0, detect_width / width)
    return [first, 1.0, UPSAMPLE] if first < 1.0 else [1.0, UPSAMPLE]
