"""Throughput of the per-video face stage on one core, against the naive loop it replaces.

    python benchmarks/preprocess.py [VIDEO]

Prints one JSON object: decode alone, the task (decode + FaceTracker + JPEG of the crop),
the naive loop (HOG on every full-resolution frame + shape predictor) and the speedup, all
measured in this run. The process and the ffmpeg it starts share one core. The `*_fps`
figures divide frames by CPU seconds (this process plus ffmpeg), which is what one
dedicated core would take even when the machine is shared; `wall_fps` has the elapsed-time
figures, equal to them on an idle machine.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import simplejpeg

from tasks import landmarks as lm
from tasks.align import FaceTracker
from tasks.decode import iter_frames
from tasks.params import PreprocessParams

REAL_CLIP = Path(__file__).resolve().parents[2] / "shared/fixtures/real/WDA_AlexandriaOcasioCortez_000.mp4"


def default_video() -> Path:
    for path in (Path("data/raw/videos/demo_00.mp4"), REAL_CLIP):
        if path.is_file():
            return path
    raise SystemExit("no video given and neither data/raw/videos/demo_00.mp4 nor the real clip exists")


def _cpu_seconds() -> float:
    # ffmpeg's time is counted in RUSAGE_CHILDREN once iter_frames has waited for it.
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def measure(loop: Callable[[], int]) -> tuple[int, float, float]:
    """Frames the loop handled, frames per CPU second, frames per wall second."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    frames = loop()
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    return frames, frames / cpu, frames / wall


def main() -> None:
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else default_video()
    # One core for this process and, by inheritance, for ffmpeg: the per-core figure that
    # sizes a worker pool.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    params = PreprocessParams()
    lm.detector(), lm.predictor()  # model loading is paid once per worker, not per video
    tracker = FaceTracker(params)

    def decode() -> int:
        return sum(1 for _ in iter_frames(video, params.fps))

    def task() -> int:
        frames = 0
        for frame in iter_frames(video, params.fps):
            simplejpeg.encode_jpeg(tracker(frame).face, quality=params.jpeg_quality, colorspace="RGB")
            frames += 1
        return frames

    def naive() -> int:
        frames = 0
        for frame in iter_frames(video, params.fps):
            lm.find_landmarks(frame)
            frames += 1
        return frames

    frames, decode_fps, decode_wall = measure(decode)
    _, task_fps, task_wall = measure(task)
    _, naive_fps, naive_wall = measure(naive)
    print(
        json.dumps(
            {
                "video": str(video),
                "frames": frames,
                "decode_fps": round(decode_fps, 1),
                "task_fps": round(task_fps, 1),
                "naive_fps": round(naive_fps, 1),
                "speedup": round(task_fps / naive_fps, 2),
                "detections": tracker.detections,
                "wall_fps": {
                    "decode": round(decode_wall, 1),
                    "task": round(task_wall, 1),
                    "naive": round(naive_wall, 1),
                },
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
