"""One video -> its partition of the frame table: the unit of work of the preprocess flow.

Frames stream from ffmpeg one at a time at `preprocess.fps`; the audio track (64 kB a
second at 16 kHz) is read whole so every frame's feature window can be centred on its
time. Every decoded frame becomes a row, with or without a face. The partition appears
only when the whole video is written (tasks/shards.py), so a failure half-way leaves the
previous partition, or nothing, under the real name.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.align import FaceTracker
from tasks.decode import DecodeError, iter_frames, probe, read_audio
from tasks.features import audio_features
from tasks.files import safe_id, sha256_file
from tasks.params import PreprocessParams, digest
from tasks.shards import ShardWriter, is_current, partition_counts


class VideoError(RuntimeError):
    """A video that cannot become a shard; the message names the file."""


def video_id_of(path: Path) -> str:
    return safe_id(Path(path).stem)


def _row(path: Path, params: PreprocessParams, status: str, error: str = "", frames: int = 0,
         frames_with_face: int = 0, seconds: float = 0.0, sha256: str = "") -> dict[str, Any]:
    return {"video_id": video_id_of(path), "status": status, "error": error, "frames": frames,
            "frames_with_face": frames_with_face, "seconds": round(seconds, 3), "fps": params.fps,
            "source": str(path), "sha256": sha256}


def _frame_features(samples: np.ndarray, seconds: float, params: PreprocessParams) -> np.ndarray:
    """Features for every frame time in `seconds`, plus a margin for the decoder's rounding."""
    times = np.arange(math.ceil(seconds * params.fps) + 2) / params.fps
    return audio_features(samples, params.sample_rate, times, params)


def process_video(path: Path, shards_root: Path, params: PreprocessParams) -> dict[str, Any]:
    """Write the partition of one video unless an identical one exists; return its stats row.

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
    if is_current(shards_root, video_id, digest(params), sha256):
        frames, with_face = partition_counts(shards_root, video_id)
        return _row(path, params, "skipped", frames=frames, frames_with_face=with_face,
                    seconds=time.perf_counter() - started, sha256=sha256)

    samples = read_audio(path, params.sample_rate, info=info)
    seconds = max(info.duration, len(samples) / params.sample_rate)
    features = _frame_features(samples, seconds, params)
    tracker = FaceTracker(params)
    # I420 skips ffmpeg's colour conversion and halves the pipe's bytes; it needs even sides.
    pix_fmt = "rgb24" if info.width % 2 or info.height % 2 else "yuv420p"
    with_face = 0
    with ShardWriter(shards_root, video_id, params, sha256) as writer:
        for index, image in enumerate(iter_frames(path, params.fps, pix_fmt=pix_fmt, info=info)):
            if index >= len(features):
                # The container understated its duration; every decoded frame still gets a row.
                seconds *= 2
                features = _frame_features(samples, seconds, params)
            aligned = tracker(image)
            with_face += aligned.face_found
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
    return _row(path, params, "ok", frames=writer.rows, frames_with_face=with_face,
                seconds=time.perf_counter() - started, sha256=sha256)


@task(name="preprocess-video", task_run_name="preprocess-{path.stem}", cache_policy=NO_CACHE)
def preprocess_video(path: Path, shards_root: Path, params: PreprocessParams) -> dict[str, Any]:
    """process_video as a Prefect task that never raises: a bad video is a `failed` row."""
    started = time.perf_counter()
    try:
        return process_video(path, shards_root, params)
    except (DecodeError, VideoError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001  one bad input never sinks a run (DESIGN.md)
        error = f"{path}: {type(exc).__name__}: {exc}"
    return _row(Path(path), params, "failed", error=error, seconds=time.perf_counter() - started)
