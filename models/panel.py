"""The paper's Fig. 6 as a video frame: the real face (when the speech comes from a corpus video), the
generated face, the lips asked for, and a strip with the mouth opening and loudness over time.

    +-----------+-----------+-----------+
    |   real    | generated |   lips    |   each render.size square
    +-----------+-----------+-----------+
    |  mouth opening and loudness, +-2 s |   a strip half as high, the cursor in the middle
    +-----------------------------------+

Drawn with cv2 (a few hundred microseconds a frame); the real crops are read from the shards
part by part, in frame order, so memory holds one batch of JPEGs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import simplejpeg

from models.data import mouth_opening
from tasks.shards import part_files, partition_dir

# The strip shows this many seconds either side of the current frame.
TRACE_SECONDS = 2.0
# The lips tile shows a square of this half-width (in crop units) around the target's mouth.
LIPS_VIEW = 0.2
PREDICTED, REAL, LOUDNESS = (235, 64, 52), (60, 200, 90), (150, 150, 150)  # RGB
OUTER = [0, 1, 2, 3, 4, 5]  # 48, 50, 52, 54, 56, 58: around the outer lip


def real_video(audio: Path, shards: Path) -> str | None:
    """The corpus video whose file `audio` is (<shards>/../raw/videos/<video_id>.mp4), else None."""
    videos = (Path(shards).parent / "raw" / "videos").resolve()
    audio = Path(audio)
    if audio.suffix == ".mp4" and audio.resolve().parent == videos and partition_dir(Path(shards), audio.stem).is_dir():
        return audio.stem
    return None


def _real_rows(shards: Path, video_id: str) -> Iterator[tuple[bytes | None, bool]]:
    """(JPEG, face_found) per frame of a video in frame order, then (None, False) forever."""
    for path in part_files(shards, video_id):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256, columns=["face", "face_found"]):
            yield from zip(batch.column("face").to_pylist(), batch.column("face_found").to_pylist())
    while True:
        yield None, False


def _real_lips(shards: Path, video_id: str) -> np.ndarray:
    """(frames, 16) lips of a corpus video, NaN where no face (64 bytes a frame: the whole video)."""
    parts = [pq.read_table(p, columns=["lips", "face_found"]) for p in part_files(shards, video_id)]
    lips = [np.asarray(t.column("lips").to_pylist(), np.float32).reshape(-1, 16) for t in parts]
    found = [t.column("face_found").to_numpy(zero_copy_only=False) for t in parts]
    lips, found = np.concatenate(lips), np.concatenate(found).astype(bool)
    lips[~found] = np.nan
    return lips


class Panel:
    """Composes panel frames. `lips` (T, 16) are the lips the generator was given, `loudness` (T,) the
    log-energy feature; both may be memmaps: only a window around the current frame is read."""

    def __init__(self, size: int, lips: np.ndarray, loudness: np.ndarray, lip_indices: list[int], fps: float,
                 target: dict, shards: str | Path, real: str | None = None):
        self.size, self.lips, self.loudness, self.lip_indices = size, lips, loudness, list(lip_indices)
        self.half = max(1, round(TRACE_SECONDS * fps))
        self.strip = size // 4 * 2
        self.real_rows = _real_rows(Path(shards), real) if real else None
        self.real_lips = _real_lips(Path(shards), real) if real else None
        self.tiles = 3 if real else 2
        self.shape = (self.tiles * size, size + self.strip)  # (width, height)
        mean = np.asarray(target["mean"], np.float32)
        self.centre = mean.reshape(8, 2).mean(0)
        self.open_top = 2.5 * float(mouth_opening(mean[None], self.lip_indices)[0]) + 1e-3
        low, high = np.percentile(np.asarray(loudness), [5, 99.5]) if len(loudness) else (0.0, 1.0)
        self.loud_range = (float(low), float(max(high, low + 1e-3)))

    def compose(self, start: int, faces: np.ndarray) -> np.ndarray:
        """(n, 128, 128, 3) generated faces of frames start.. -> (n, height, width, 3) panel frames."""
        frames = np.empty((len(faces), self.shape[1], self.shape[0], 3), np.uint8)
        for k, face in enumerate(faces):
            frames[k] = self._frame(start + k, face)
        return frames

    def _tile(self, image: np.ndarray | None, label: str) -> np.ndarray:
        if image is None:
            tile = np.full((self.size, self.size, 3), 48, np.uint8)
            cv2.putText(tile, "no face", (self.size // 3, self.size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (200, 200, 200), 1, cv2.LINE_AA)
        elif image.shape[0] != self.size:
            tile = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LANCZOS4)
        else:
            tile = image.copy()
        cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return tile

    def _points(self, lips: np.ndarray) -> np.ndarray:
        scale = self.size / (2 * LIPS_VIEW)
        xy = (lips.reshape(8, 2) - self.centre + LIPS_VIEW) * scale
        return np.round(xy * 16).astype(np.int32)  # 4 fractional bits: sub-pixel lines

    def _lips_tile(self, index: int) -> np.ndarray:
        tile = np.full((self.size, self.size, 3), 250, np.uint8)
        shapes = [(self.lips[index], PREDICTED)]
        if self.real_lips is not None and index < len(self.real_lips) and not np.isnan(self.real_lips[index]).any():
            shapes.insert(0, (self.real_lips[index], REAL))
        for lips, colour in shapes:
            points = self._points(np.asarray(lips))
            cv2.polylines(tile, [points[OUTER]], True, colour, 2, cv2.LINE_AA, shift=4)
            cv2.line(tile, tuple(points[6]), tuple(points[7]), colour, 1, cv2.LINE_AA, shift=4)
            for point in points:
                cv2.circle(tile, tuple(point), 3 * 16, colour, -1, cv2.LINE_AA, shift=4)
        cv2.putText(tile, "lips", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return tile

    def _trace(self, values: np.ndarray, lo: int, index: int, low: float, high: float, colour) -> np.ndarray | None:
        width, height = self.shape[0], self.strip
        x = (np.arange(lo, lo + len(values)) - index + self.half) / (2 * self.half) * (width - 1)
        y = (height - 4) - np.clip((values - low) / (high - low), 0, 1) * (height - 8)
        keep = np.isfinite(y)
        if keep.sum() < 2:
            return None
        return np.round(np.stack([x[keep], y[keep]], 1) * 16).astype(np.int32)

    def _strip(self, index: int) -> np.ndarray:
        strip = np.full((self.strip, self.shape[0], 3), 24, np.uint8)
        lo, hi = max(0, index - self.half), min(len(self.lips), index + self.half + 1)
        traces = [(np.asarray(self.loudness[lo:hi], np.float64), *self.loud_range, LOUDNESS, lo),
                  (mouth_opening(np.asarray(self.lips[lo:hi]), self.lip_indices), 0.0, self.open_top, PREDICTED, lo)]
        if self.real_lips is not None:
            rlo, rhi = min(lo, len(self.real_lips)), min(hi, len(self.real_lips))
            traces.insert(1, (mouth_opening(self.real_lips[rlo:rhi], self.lip_indices), 0.0, self.open_top, REAL, rlo))
        for values, low, high, colour, start in traces:
            points = self._trace(values, start, index, low, high, colour)
            if points is not None:
                cv2.polylines(strip, [points], False, colour, 1, cv2.LINE_AA, shift=4)
        centre = self.shape[0] // 2
        cv2.line(strip, (centre, 0), (centre, self.strip - 1), (255, 255, 255), 1)
        legend = "mouth opening: predicted (red)" + (", real (green)" if self.real_lips is not None else "")
        cv2.putText(strip, legend + "; loudness (grey)", (6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (220, 220, 220), 1, cv2.LINE_AA)
        return strip

    def _frame(self, index: int, face: np.ndarray) -> np.ndarray:
        tiles = []
        if self.real_rows is not None:
            jpeg, found = next(self.real_rows)
            image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB") if jpeg and found else None
            tiles.append(self._tile(image, "real"))
        tiles += [self._tile(face, "generated"), self._lips_tile(index)]
        return np.vstack([np.hstack(tiles), self._strip(index)])
