"""Side-by-side views for judging a render by eye, each over a strip of traces (the mouth opening
asked for, the real one when the speech comes from a corpus video, and loudness, over +-2 s):

    output "panel" (FramePanel)              output "face_panel" (Panel: the paper's Fig. 6)
    +---------------+---------------+        +-----------+-----------+-----------+
    | target frame  |   composite   |        |   real    | generated |   lips    |
    +---------------+---------------+        +-----------+-----------+-----------+
    |            traces             |        |              traces               |
    +-------------------------------+        +-----------------------------------+

Drawn with cv2 (a few hundred microseconds a frame); the real crops are read from the shards
part by part, in frame order, so memory holds one batch of JPEGs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from models.records import LipsStats
from tasks.config.paths import Paths
from tasks.rows.landmarks import lips_opening
from tasks.table.shards import iter_batches, partition_dir

# The strip shows this many seconds either side of the current frame.
TRACE_SECONDS = 2.0
# The lips tile shows a square of this half-width (in crop units) around the target's mouth.
LIPS_VIEW = 0.2
# cv2 draws with 4 fractional bits (shift=4): coordinates times SUBPIXEL, for sub-pixel lines.
SUBPIXEL = 16
PREDICTED, REAL, LOUDNESS = (235, 64, 52), (60, 200, 90), (150, 150, 150)  # RGB
OUTER = [0, 1, 2, 3, 4, 5]  # 48, 50, 52, 54, 56, 58: around the outer lip


def real_video(audio: Path, paths: Paths) -> str | None:
    """The corpus video whose file `audio` is (`paths.videos`/<video_id>.mp4, with frames in
    `paths.shards`), else None."""
    audio = Path(audio)
    if (
        audio.suffix == ".mp4"
        and audio.resolve().parent == Path(paths.videos).resolve()
        and partition_dir(paths.shards, audio.stem).is_dir()
    ):
        return audio.stem
    return None


def _real_rows(shards: Path, video_id: str) -> Iterator[tuple[bytes | None, bool]]:
    """(JPEG, face_found) per frame of a video in frame order, then (None, False) forever."""
    for batch in iter_batches(shards, video_id, ["face", "face_found"]):
        yield from zip(batch.column("face").to_pylist(), batch.column("face_found").to_pylist())
    while True:
        yield None, False


class Traces:
    """The strip under a panel. `lips` (T, LIPS_DIM) are the lips the generator was given, `loudness`
    (T,) the log-energy feature; both may be memmaps: only a window around the current frame is read.
    `real_lips`: the true lips of the video the speech comes from, NaN where it has no face."""

    def __init__(
        self,
        lips: np.ndarray,
        loudness: np.ndarray,
        lip_indices: list[int],
        fps: float,
        target: LipsStats,
        height: int,
        real_lips: np.ndarray | None = None,
    ):
        self.lips, self.loudness, self.lip_indices = lips, loudness, list(lip_indices)
        self.real_lips, self.height = real_lips, height
        self.half = max(1, round(TRACE_SECONDS * fps))
        mean = target.mean.astype(np.float32)
        self.open_top = 2.5 * float(lips_opening(mean[None], self.lip_indices)[0]) + 1e-3
        low, high = np.percentile(np.asarray(loudness), [5, 99.5]) if len(loudness) else (0.0, 1.0)
        self.loud_range = (float(low), float(max(high, low + 1e-3)))

    def _points(
        self, values: np.ndarray, lo: int, index: int, low: float, high: float, width: int
    ) -> np.ndarray | None:
        x = (np.arange(lo, lo + len(values)) - index + self.half) / (2 * self.half) * (width - 1)
        y = (self.height - 4) - np.clip((values - low) / (high - low), 0, 1) * (self.height - 8)
        keep = np.isfinite(y)
        if keep.sum() < 2:
            return None
        return np.round(np.stack([x[keep], y[keep]], 1) * SUBPIXEL).astype(np.int32)

    def draw(self, index: int, width: int) -> np.ndarray:
        strip = np.full((self.height, width, 3), 24, np.uint8)
        lo, hi = max(0, index - self.half), min(len(self.lips), index + self.half + 1)
        opening = lips_opening(np.asarray(self.lips[lo:hi]), self.lip_indices)
        traces = [
            (np.asarray(self.loudness[lo:hi], np.float64), *self.loud_range, LOUDNESS, lo),
            (opening, 0.0, self.open_top, PREDICTED, lo),
        ]
        if self.real_lips is not None:
            rlo, rhi = min(lo, len(self.real_lips)), min(hi, len(self.real_lips))
            real = lips_opening(self.real_lips[rlo:rhi], self.lip_indices)
            traces.insert(1, (real, 0.0, self.open_top, REAL, rlo))
        for values, low, high, colour, start in traces:
            points = self._points(values, start, index, low, high, width)
            if points is not None:
                cv2.polylines(strip, [points], False, colour, 1, cv2.LINE_AA, shift=4)
        cv2.line(strip, (width // 2, 0), (width // 2, self.height - 1), (255, 255, 255), 1)
        legend = "mouth opening: asked (red)" + (", real (green)" if self.real_lips is not None else "")
        cv2.putText(
            strip,
            legend + "; loudness (grey)",
            (6, 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (220, 220, 220),
            1,
            cv2.LINE_AA,
        )
        return strip


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(tile, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


class Panel:
    """Composes face-only panel frames (the paper's Fig. 6) from generated faces."""

    def __init__(
        self,
        size: int,
        traces: Traces,
        target: LipsStats,
        shards: str | Path,
        real: str | None = None,
    ):
        self.size, self.traces = size, traces
        self.real_rows = _real_rows(Path(shards), real) if real else None
        self.tiles = 3 if real else 2
        self.shape = (self.tiles * size, size + traces.height)  # (width, height)
        self.centre = target.mean.astype(np.float32).reshape(-1, 2).mean(0)

    def compose(self, start: int, faces: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) generated faces of frames start.. -> (n, height, width, 3) panel frames."""
        frames = np.empty((len(faces), self.shape[1], self.shape[0], 3), np.uint8)
        for k, face in enumerate(faces):
            frames[k] = self._frame(start + k, face)
        return frames

    def _tile(self, image: np.ndarray | None, label: str) -> np.ndarray:
        if image is None:
            tile = np.full((self.size, self.size, 3), 48, np.uint8)
            cv2.putText(
                tile,
                "no face",
                (self.size // 3, self.size // 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (200, 200, 200),
                1,
                cv2.LINE_AA,
            )
        elif image.shape[0] != self.size:
            tile = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LANCZOS4)
        else:
            tile = image.copy()
        return _label(tile, label)

    def _points(self, lips: np.ndarray) -> np.ndarray:
        scale = self.size / (2 * LIPS_VIEW)
        xy = (lips.reshape(-1, 2) - self.centre + LIPS_VIEW) * scale
        return np.round(xy * SUBPIXEL).astype(np.int32)

    def _lips_tile(self, index: int) -> np.ndarray:
        tile = np.full((self.size, self.size, 3), 250, np.uint8)
        shapes = [(self.traces.lips[index], PREDICTED)]
        real = self.traces.real_lips
        if real is not None and index < len(real) and not np.isnan(real[index]).any():
            shapes.insert(0, (real[index], REAL))
        for lips, colour in shapes:
            points = self._points(np.asarray(lips))
            cv2.polylines(tile, [points[OUTER]], True, colour, 2, cv2.LINE_AA, shift=4)
            cv2.line(tile, tuple(points[6]), tuple(points[7]), colour, 1, cv2.LINE_AA, shift=4)
            for point in points:
                cv2.circle(tile, tuple(point), 3 * SUBPIXEL, colour, -1, cv2.LINE_AA, shift=4)
        cv2.putText(tile, "lips", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return tile

    def _frame(self, index: int, face: np.ndarray) -> np.ndarray:
        tiles = []
        if self.real_rows is not None:
            jpeg, found = next(self.real_rows)
            image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB") if jpeg and found else None
            tiles.append(self._tile(image, "real"))
        tiles += [self._tile(face, "generated"), self._lips_tile(index)]
        return np.vstack([np.hstack(tiles), self.traces.draw(index, self.shape[0])])


class FramePanel:
    """Composes full-frame panel frames: the target's frame beside the composite, traces below.
    Tiles are scaled to at most `height` pixels high (even sides, for H.264)."""

    def __init__(self, frame_size: tuple[int, int], height: int, traces: Traces):
        width, frame_height = frame_size
        self.tile_height = min(frame_height, height) // 2 * 2
        self.tile_width = round(width * self.tile_height / frame_height) // 2 * 2
        self.traces = traces
        self.shape = (2 * self.tile_width, self.tile_height + traces.height)  # (width, height)

    def _tile(self, image: np.ndarray, label: str) -> np.ndarray:
        if image.shape[:2] != (self.tile_height, self.tile_width):
            image = cv2.resize(image, (self.tile_width, self.tile_height), interpolation=cv2.INTER_AREA)
        else:
            image = image.copy()  # decoded frames are read-only views of ffmpeg's buffer
        return _label(image, label)

    def compose(self, index: int, source: np.ndarray, composite: np.ndarray) -> np.ndarray:
        top = np.hstack([self._tile(source, "target"), self._tile(composite, "composite")])
        return np.vstack([top, self.traces.draw(index, self.shape[0])])
