"""Where HOG finds faces in a frame (tasks/rows/align.py's FaceTracker asks it): the whole frame, or a
window around where a face is or was.

Faces of any size: HOG's window is 80 px, so a whole-frame search climbs a ladder of scales
when it finds nothing (the frame downscaled to detect_width, the full frame, the frame
upsampled 2x: faces down to ~40 px) and keeps the rung that found a face for the rest of
the video. Windows around a face are scaled so the face is ROI_FACE px, up or down. Faces
squashed in the picture itself (anamorphic video that lost its aspect flag) are shown to HOG
restretched: by the frame's shape until a face is found, then by the faces' own measure.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from tasks.rows import landmarks as lm

# Scheduled detections search a window ROI_SIDE tracked boxes wide (tasks/rows/align.py), scaled so
# the face is ROI_FACE px: the detector's window is 80 px and its pyramid steps by 5/6.
ROI_FACE = 100
# The top of the ladder of whole-frame search scales, and the most a window around a small
# face is enlarged: HOG then finds faces of about 80 / UPSAMPLE px.
UPSAMPLE = 2.0
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


class FaceSearch:
    """HOG's searches of one video's frames, in order: the rung of the ladder kept, how much taller
    than it is the picture is shown (`stretch`), how many searches ran (`detections`) and how many
    frames since the last (`due`)."""

    def __init__(self, detect_width: int, detect_every: int):
        self.detect_width = detect_width
        self.detect_every = detect_every
        self.detections = 0
        self._since_detect = 0
        # Whole-frame search scales (set by the first frame's width), the rung kept, and how
        # many more faceless frames pass before the rungs above it are tried again.
        self._ladder: list[float] = []
        self._rung = 0
        self._climb_wait = 0
        # How much taller than it is HOG is shown the picture (1: as it is), from recent faces.
        self._drops: list[float] = []
        self.stretch = 1.0

    @property
    def scale(self) -> float:
        """The whole-frame search scale kept so far (1: full resolution, 2: upsampled)."""
        return self._ladder[self._rung] if self._ladder else 0.0

    def due(self) -> bool:
        """Called once a frame, before any search of it: whether detect_every frames have passed since
        HOG last ran, so that a scheduled detection is due."""
        self._since_detect += 1
        return self._since_detect >= self.detect_every

    def frame(self, image: np.ndarray) -> list[dlib.rectangle]:
        """Faces in the whole frame, at the kept rung of the ladder, then the rungs above it.

        A rung up costs 4x the one below, so on a run of faceless frames the rungs above the
        kept one are tried once every detect_every frames: a face too small for the kept rung
        is still found within detect_every frames, and a video without faces stays cheap.
        The first search of a climb is weighed against the frame shown square (_or_square).
        """
        if not self._ladder:
            self._ladder = ladder(image.shape[1], self.detect_width)
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

    def near(self, image: np.ndarray, around: dlib.rectangle, side: float) -> list[dlib.rectangle]:
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

    def measure_stretch(self, landmarks: np.ndarray) -> None:
        """Update `stretch` from the mouth's drop below the eyes in the last few detections."""
        self._drops = [*self._drops[-8:], lm.mouth_drop(landmarks)]
        # The landmarks are in frame pixels, so this is the picture's distortion whatever HOG was shown.
        factor = MOUTH_DROP / max(float(np.median(self._drops)), 1e-3)
        self.stretch = 1.0 if 1 / NATURAL_STRETCH < factor < NATURAL_STRETCH else factor


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
