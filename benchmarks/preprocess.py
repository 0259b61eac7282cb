"""Throughput of the per-video task on one core, against the naive loop it replaces.

    python -m benchmarks.preprocess [VIDEO]   # default: the project's demo_00, else the real clip

Prints one JSON object, all measured in this run: `decode_fps`, ffmpeg decoding alone (the
frames the task reads: I420, or RGB at an odd size); `task_fps`, the whole per-video task,
tasks.ingest.video.process_video into a temporary shards folder (probe, audio read, features,
decoding, tracking, JPEG, Parquet); `naive_fps`, HOG on every full-resolution RGB frame + the shape predictor;
`naive_x2_fps`, the same with HOG on every frame upsampled 2x (what finds faces of ~40-80
px, which the task finds by climbing to that scale only when it must); and the speedups of
the task over both (`speedup`, `speedup_x2`). The process and the ffmpeg and ffprobe it
starts share one core. The `*_fps` figures divide frames by CPU seconds (this process plus
its children), which is what one dedicated core would take even when the machine is
shared; `wall_fps` has the elapsed-time figures, equal to them on an idle machine.
Per-process costs (imports, model loading, librosa's JIT) are paid once by a warm-up run
of the task and left out: a worker pays them once, not per video.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from tasks.config.params import PreprocessParams
from tasks.config.paths import REAL_FIXTURES, Paths
from tasks.ingest.video import frame_format, process_video
from tasks.rows import landmarks as lm
from tasks.rows.decode import iter_frames, probe

REAL_CLIP = REAL_FIXTURES / "WDA_AlexandriaOcasioCortez_000.mp4"


def default_video() -> Path:
    demo = Paths.at().videos / "demo_00.mp4"
    for path in (demo, REAL_CLIP):
        if path.is_file():
            return path
    raise SystemExit(f"no video given and neither {demo} nor the real clip exists")


def _cpu_seconds() -> float:
    # Children (ffprobe, ffmpeg) count in RUSAGE_CHILDREN once waited for, as every call here does.
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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preprocess",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", type=Path,
                        help=f"default: the project's demo_00, else {REAL_CLIP.name} of the real fixtures")
    return parser


def main(argv: list[str] | None = None) -> None:
    video = parser().parse_args(argv).video or default_video()
    if not video.is_file():
        raise SystemExit(f"{video}: no such file")
    # One core for this process and, by inheritance, for ffmpeg: the per-core figure that
    # sizes a worker pool.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    params = PreprocessParams()
    info = probe(video)
    shards = Path(tempfile.mkdtemp(prefix="reenact-bench-"))
    rows = []

    width, height, pix_fmt = frame_format(info)

    def decode() -> int:
        frames = iter_frames(video, params.fps, width=width, height=height, pix_fmt=pix_fmt, info=info)
        return sum(1 for _ in frames)

    def task() -> int:
        # A fresh folder each run: an existing partition would be skipped, not rebuilt.
        rows.append(process_video(video, shards / str(len(rows)), params))
        return rows[-1]["frames"]

    def naive(upsample: int) -> Callable[[], int]:
        def loop() -> int:
            frames = 0
            for frame in iter_frames(video, params.fps, info=info):
                lm.find_landmarks(frame, upsample=upsample)
                frames += 1
            return frames

        return loop

    try:
        task()
        frames, decode_fps, decode_wall = measure(decode)
        _, task_fps, task_wall = measure(task)
        _, naive_fps, naive_wall = measure(naive(0))
        _, naive_x2_fps, naive_x2_wall = measure(naive(1))
    finally:
        shutil.rmtree(shards, ignore_errors=True)
    print(
        json.dumps(
            {
                "video": str(video),
                "frames": frames,
                "decode_fps": round(decode_fps, 1),
                "task_fps": round(task_fps, 1),
                "naive_fps": round(naive_fps, 1),
                "naive_x2_fps": round(naive_x2_fps, 1),
                "speedup": round(task_fps / naive_fps, 2),
                "speedup_x2": round(task_fps / naive_x2_fps, 2),
                "frames_with_face": rows[-1]["frames_with_face"],
                "warning": rows[-1]["warning"],
                "wall_fps": {
                    "decode": round(decode_wall, 1),
                    "task": round(task_wall, 1),
                    "naive": round(naive_wall, 1),
                    "naive_x2": round(naive_x2_wall, 1),
                },
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
