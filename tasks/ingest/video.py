"""One video -> its partition of the frame table: the unit of work of the preprocess flow.

Frames stream from ffmpeg one at a time at `preprocess.fps`; the audio track (64 kB a
second at 16 kHz) is read whole so every frame's feature window can be centred on its
time. Every decoded frame becomes a row, with or without a face. The partition appears
only when the whole video is written (tasks/table/shards.py), so a failure half-way leaves the
previous partition, or nothing, under the real name.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from tasks.config.files import safe_id, sha256_file
from tasks.config.params import PreprocessParams
from tasks.rows.align import UPSAMPLE, FaceTracker
from tasks.rows.crop import face_width
from tasks.rows.decode import DecodeError, MediaInfo, iter_frames, probe, read_audio
from tasks.rows.features import audio_features
from tasks.rows.rowkey import cache_key
from tasks.table.shards import ShardWriter, is_current, list_column_as_array, read_frames

# A video with a face in fewer of its frames than this is flagged: it gives little to train on.
MIN_FACE_SHARE = 0.5
# HOG's window is 80 px: upsampled UPSAMPLE x, faces narrower than this are at its limit.
SMALL_FACE_PX = 1.5 * 80 / UPSAMPLE


class VideoError(RuntimeError):
    """A video that cannot become a shard; the message names the file."""


def video_id_of(path: Path) -> str:
    return safe_id(Path(path).stem)


def _row(path: Path, params: PreprocessParams, status: str, error: str = "", frames: int = 0,
         frames_with_face: int = 0, seconds: float = 0.0, sha256: str = "",
         warning: str = "") -> dict[str, Any]:
    return {"video_id": video_id_of(path), "status": status, "error": error, "frames": frames,
            "frames_with_face": frames_with_face, "seconds": round(seconds, 3), "fps": params.fps,
            "source": str(path), "sha256": sha256, "warning": warning}


def face_warning(frames: int, with_face: int, widths: np.ndarray) -> str:
    """Why a video has a face in fewer than MIN_FACE_SHARE of its frames, or "" when it has enough.

    `widths`: the face widths (px in the frame, tasks.rows.align.face_width) of the frames with one.
    """
    if frames == 0 or with_face >= MIN_FACE_SHARE * frames:
        return ""
    share = f"a face in {with_face / frames:.0%} of frames"
    if with_face == 0:
        return f"{share}: no face found, even upsampled {UPSAMPLE:g}x (none in view, or all under ~40 px)"
    width = float(np.median(widths))
    if width < SMALL_FACE_PX:
        return (f"{share}: faces about {width:.0f} px wide, smaller than ~80 px at the detection scale "
                f"even upsampled {UPSAMPLE:g}x")
    return f"{share}: faces about {width:.0f} px wide, lost in most frames (turned, covered, out of view)"


def _partition_faces(shards_root: Path, video_id: str, face_size: int) -> tuple[int, int, np.ndarray]:
    """(frames, frames with a face, their face widths) of a written partition."""
    table = read_frames(shards_root, video_id, ["face_found", "crop"])
    found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
    crops = list_column_as_array(table, "crop")
    return len(found), int(found.sum()), face_width(crops[found], face_size)


def _frame_features(samples: np.ndarray, seconds: float, params: PreprocessParams) -> np.ndarray:
    """Features for every frame time in `seconds`, plus a margin for the decoder's rounding."""
    times = np.arange(math.ceil(seconds * params.fps) + 2) / params.fps
    return audio_features(samples, params.sample_rate, times, params)


def frame_format(info: MediaInfo) -> tuple[int, int, str]:
    """The width, height and pix_fmt the task decodes a video's frames at."""
    # Anamorphic video is decoded to square pixels, as it is shown: HOG misses squashed faces.
    width, height = info.square_pixel_size()
    # I420 skips ffmpeg's colour conversion and halves the pipe's bytes; it needs even sides.
    return width, height, "rgb24" if width % 2 or height % 2 else "yuv420p"


def process_video(path: Path, shards_root: Path, params: PreprocessParams,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the partition of one video unless an identical one exists; return its stats row.
    `progress(frames done, frames expected)` is called after each frame.

    Raises DecodeError or VideoError, naming the file, when the video cannot be used.
    """
    started = time.perf_counter()
    path = Path(path)
    video_id = video_id_of(path)
    info = probe(path)
    if not info.has_video:
        raise VideoError(f"{path}: has no video stream (audio-only file?)")
    if not info.has_audio:
        raise VideoError(f"{path}: has no audio stream; the frame table needs speech for every frame")
    sha256 = sha256_file(path)
    if is_current(shards_root, video_id, cache_key(params), sha256):
        frames, with_face, widths = _partition_faces(shards_root, video_id, params.face_size)
        return _row(path, params, "skipped", frames=frames, frames_with_face=with_face,
                    seconds=time.perf_counter() - started, sha256=sha256,
                    warning=face_warning(frames, with_face, widths))

    samples = read_audio(path, params.sample_rate, info=info)
    seconds = max(info.duration, len(samples) / params.sample_rate)
    features = _frame_features(samples, seconds, params)
    tracker = FaceTracker(params)
    width, height, pix_fmt = frame_format(info)
    crops, expected = [], math.ceil(info.duration * params.fps)
    with ShardWriter(shards_root, video_id, params, sha256) as writer:
        frames = iter_frames(path, params.fps, width=width, height=height, pix_fmt=pix_fmt, info=info)
        for index, image in enumerate(frames):
            if index >= len(features):
                # The container understated its duration; every decoded frame still gets a row.
                seconds *= 2
                features = _frame_features(samples, seconds, params)
            aligned = tracker(image)
            if progress is not None:
                progress(index + 1, max(index + 1, expected))
            if aligned.face_found:
                crops.append(aligned.crop)
            writer.add(
                frame=index,
                time=index / params.fps,
                face_found=aligned.face_found,
                landmarks=aligned.landmarks,
                lips=aligned.lips,
                audio=features[index],
                face=simplejpeg.encode_jpeg(np.ascontiguousarray(aligned.face), quality=params.jpeg_quality,
                                            colorspace="RGB"),
                crop=aligned.crop,
            )
        if writer.rows == 0:
            raise VideoError(f"{path}: no frames could be decoded")
        writer.commit()
    warning = face_warning(writer.rows, len(crops), face_width(np.array(crops), params.face_size))
    return _row(path, params, "ok", frames=writer.rows, frames_with_face=len(crops),
                seconds=time.perf_counter() - started, sha256=sha256, warning=warning)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger, or a plain one when called outside a flow (tests, benchmarks)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@task(name="preprocess-video", task_run_name="preprocess-{path.stem}", cache_policy=NO_CACHE)
def preprocess_video(path: Path, shards_root: Path, params: PreprocessParams) -> dict[str, Any]:
    """process_video as a Prefect task that never raises: a bad video is a `failed` row.

    A known failure (DecodeError, VideoError: no such file, not media, a missing stream, a
    truncated file) is its one-line message; anything else is a bug, logged with its traceback.
    """
    started = time.perf_counter()
    try:
        return process_video(path, shards_root, params)
    except (DecodeError, VideoError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001  one bad input never sinks a run (ARCHITECTURE.md)
        _logger().exception("%s: unexpected error", path)
        error = f"{path}: {type(exc).__name__}: {exc}"
    return _row(Path(path), params, "failed", error=error, seconds=time.perf_counter() - started)
