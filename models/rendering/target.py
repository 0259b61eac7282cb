"""The target's own footage for full-frame rendering (ARCHITECTURE.md, Rendering): its frames, decoded
at the pipeline's fps, each with its row of the frame table (crop transform, landmarks, lips).

Output frame i shows target frame `pingpong(i, frames)`: the video plays forward, then backward,
then forward again, so speech longer than the target never freezes or jumps, and head motion and
blinks stay the real ones. Forward passes stream from one ffmpeg process; a backward pass decodes
the video in short segments from the end (seeking), each reversed in memory, so memory holds one
segment however long the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from models.errors import RenderError
from tasks.rows.decode import DecodeError, MediaInfo, iter_frames, probe
from tasks.table.shards import decode_crops, list_column_as_array, part_files, partition_dir, read_frames

# A backward pass holds this many bytes of decoded frames at a time (~0.3 s of 1080p, 2 s of 512^2).
SEGMENT_BYTES = 96 * 2**20


@dataclass
class TargetRows:
    """One target video's rows, in frame order (572 bytes a frame: hours fit in memory)."""

    video_id: str
    crop: np.ndarray  # (N, 2, 3) source pixels -> crop pixels
    landmarks: np.ndarray  # (N, 68, 2) crop pixels, NaN without a face
    lips: np.ndarray  # (N, LIPS_DIM) in [0, 1] of the crop, NaN without a face
    face_found: np.ndarray  # (N,) bool
    faces: pa.Array | None = None  # the aligned crops, JPEG (a few kB a frame), when asked for

    def __len__(self) -> int:
        return len(self.face_found)

    def crops(self, indices: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8: the aligned crops of frames `indices` (read with faces=True)."""
        return decode_crops(self.faces, indices)


def read_target_rows(shards: str | Path, video_id: str, faces: bool = False) -> TargetRows:
    """The rows of `video_id` needed for compositing (`faces`: and for the frame generator, the aligned
    crops); RenderError when it has none or no face at all."""
    if not part_files(Path(shards), video_id):
        raise RenderError(
            f"target {video_id!r}: no frames in {partition_dir(Path(shards), video_id)} "
            "(preprocess it first: ingest the video, then `dvc repro preprocess`)"
        )
    columns = ["face_found", "landmarks", "lips", "crop"] + (["face"] if faces else [])
    table = read_frames(Path(shards), video_id, columns)
    found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
    if not found.any():
        raise RenderError(f"target {video_id!r}: no frame with a face to composite onto")
    return TargetRows(
        video_id,
        list_column_as_array(table, "crop").reshape(-1, 2, 3),
        list_column_as_array(table, "landmarks").reshape(len(found), -1, 2),
        list_column_as_array(table, "lips"),
        found,
        table.column("face").combine_chunks() if faces else None,
    )


def pingpong(index: np.ndarray | int, frames: int) -> np.ndarray | int:
    """The target frame shown at output frame `index`: 0, 1, .., N-1, N-2, .., 0, 1, .. (no repeats)."""
    if frames <= 1:
        return np.zeros_like(index) if isinstance(index, np.ndarray) else 0
    period = 2 * frames - 2
    phase = np.mod(index, period)
    return (
        np.where(phase < frames, phase, period - phase)
        if isinstance(index, np.ndarray)
        else (phase if phase < frames else period - phase)
    )


def target_video_file(videos: str | Path, video_id: str) -> Path:
    """paths.videos/<video_id>.<ext>: the footage the rows were made from."""
    found = sorted(Path(videos).glob(f"{video_id}.*"))
    if not found:
        raise RenderError(f"target {video_id!r}: no video file {Path(videos) / video_id}.* to composite onto")
    return found[0]


class TargetFrames:
    """Iterates (target frame index, RGB frame) for output frames 0..count-1 in ping-pong order."""

    def __init__(self, path: Path, fps: float, frames: int):
        self.path, self.fps, self.frames = Path(path), fps, frames
        try:
            self.info: MediaInfo = probe(path)
        except DecodeError as exc:
            raise RenderError(str(exc)) from None
        if not self.info.has_video:
            raise RenderError(f"{path}: has no video stream")
        self.width, self.height = self.info.width, self.info.height
        self.segment = max(4, SEGMENT_BYTES // (self.width * self.height * 3))

    def _forward(self, first: int) -> Iterator[tuple[int, np.ndarray]]:
        index = first
        for frame in iter_frames(self.path, self.fps, info=self.info, start=first):
            if index >= self.frames:
                return
            yield index, frame
            index += 1
        if index < self.frames:
            raise RenderError(f"{self.path}: decoded {index} frames, the frame table has {self.frames}")

    def _backward(self, last: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames last, last-1, .., 0, a segment at a time."""
        end = last + 1
        while end > 0:
            start = max(0, end - self.segment)
            segment = [frame for _, (_, frame) in zip(range(end - start), self._forward(start))]
            for offset in range(len(segment) - 1, -1, -1):
                yield start + offset, segment[offset]
            end = start

    def __call__(self, count: int) -> Iterator[tuple[int, np.ndarray]]:
        n, done = self.frames, 0
        if n == 1:
            frame = next(self._forward(0))[1]
            yield from ((0, frame) for _ in range(count))
            return
        forward = True
        while done < count:
            # a forward pass starts at 0 (first) or 1 (after a backward pass ended on 0), and so on
            passes = self._forward(0 if done == 0 else 1) if forward else self._backward(n - 2)
            for index, frame in passes:
                if done >= count:
                    return
                yield index, frame
                done += 1
            forward = not forward
