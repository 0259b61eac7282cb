"""Rendering speed on this machine, printed as one JSON object.

    python -m benchmarks.render [AUDIO] [--threads 2] [--repeats 2] [--target ID] [--root ...] [--lstm ...]

Every figure is seconds of audio rendered per second of wall time for the whole of `render()`:
probing, decoding, features, LSTM, alignment, generator, compositing, encoding (H.264 + AAC),
signing and the rename; the best of `--repeats` runs after one warm-up render.

- realtime_factor, realtime_factor_256: the face crop at 128 and 256 px (output "face").
- naive_realtime_factor: the face crop the obvious way, in the same run: the generator as
  load_generator returns it (NCHW, where render uses channels_last), one frame per call.
- realtime_factor_full: the full-frame composite onto the target's own 512x512 footage.
- realtime_factor_720p: the same onto that footage scaled into 1280x720 (made and preprocessed
  here, in a temporary folder).
- batch128_realtime_factor_full: the full frame again with 128 frames per generator call (the default
  before 16), in the same run.
- seamless_clone_*: the same full-frame renders with compositing done as SadTalker's paste_pic
  does it, the generated crop's whole box put back with cv2.seamlessClone frame by frame: the
  naive baseline, in the same run.
AUDIO defaults to the real speech fixture (tasks/config/paths.py: REAL_FIXTURES) if present, else a demo
clip's audio track. The models, frame table and footage are the project's under --root (default: this
checkout; tasks/config/paths.py), each movable on its own (--params, --lstm, --cgan, --shards, --videos).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from models.networks.cgan import load_generator
from models.rendering import layouts
from models.rendering.composite import warp_back
from models.rendering.render import RenderOptions, load_models, render, resolve_target
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, REAL_FIXTURES, Paths
from tasks.ingest.video import process_video

REAL_SPEECH = REAL_FIXTURES / "RD_Radio31_000.wav"


def default_audio(videos: Path) -> Path:
    if REAL_SPEECH.exists():
        return REAL_SPEECH
    clips = sorted(videos.glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no audio given, no real speech fixture and no {videos}/*.mp4")
    return clips[0]


def seamless_clone(frame, face, crop, landmarks, face_found=True, with_alpha=False):
    """SadTalker's paste_pic: the generated crop back in its box, the whole box Poisson-blended into the
    frame with cv2.seamlessClone, frame by frame (a mask of 255s over the box, NORMAL_CLONE)."""
    if not face_found:
        return frame, None
    height, width = frame.shape[:2]
    whole = (0, 0, width, height)
    warped = warp_back(face, crop, whole, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
    box = warp_back(np.full(face.shape[:2], 255, np.uint8), crop, whole, cv2.INTER_NEAREST)
    x, y, w, h = cv2.boundingRect(box)
    # seamlessClone needs the box a pixel inside the frame on every side
    box[:1], box[-1:], box[:, :1], box[:, -1:] = 0, 0, 0, 0
    if w < 3 or h < 3:
        return frame, None
    x, y, w, h = cv2.boundingRect(box)
    return cv2.seamlessClone(warped, frame, box, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE), None


def make_720p(videos: Path, shards: Path, target: str, scratch: Path, params) -> tuple[Path, Path, str]:
    """The target's footage scaled into a 1280x720 frame and preprocessed: (videos, shards, video id)."""
    out_videos, out_shards = scratch / "videos", scratch / "shards"
    out_videos.mkdir()
    video_id = f"{target}_720p"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(videos / f"{target}.mp4"),
            "-vf",
            "scale=720:720,pad=1280:720:280:0",
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-c:a",
            "copy",
            str(out_videos / f"{video_id}.mp4"),
        ],
        check=True,
    )
    process_video(out_videos / f"{video_id}.mp4", out_shards, params.preprocess)
    return out_videos, out_shards, video_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT,
                        help="the project (default: this checkout)")
    for location in ("params", "lstm", "cgan", "shards", "videos"):
        parser.add_argument(f"--{location}", type=Path, default=None, help="default: the project's")
    parser.add_argument("--target", default=None, help="default: the generator's target video")
    args = parser.parse_args(argv)
    paths = Paths.at(
        args.root, params=args.params, lstm=args.lstm, cgan=args.cgan, shards=args.shards, videos=args.videos
    )
    audio = args.audio or default_audio(paths.videos)
    torch.set_num_threads(args.threads)
    base = load_params(paths.params)
    models = load_models(paths.lstm, paths.cgan, base.device)
    target = args.target or models.cgan_artifact.target_video
    runs = {}

    with tempfile.TemporaryDirectory(prefix="reenact-bench-") as scratch:
        scratch = Path(scratch)
        out = scratch / "bench.mp4"

        def best(
            repeats: int,
            models=models,
            output="face",
            shards=paths.shards,
            videos=paths.videos,
            target=target,
            **overrides,
        ) -> dict:
            params = load_params(paths.params, overrides)
            speaking = resolve_target(paths.moved(shards=shards, videos=videos), params, target, models)
            options = RenderOptions(output=output)
            results = [render(audio, out, speaking, params, options) for _ in range(repeats)]
            return min(results, key=lambda run: run.wall_seconds)

        best(1, **{"render.size": 128})
        runs["128"] = best(args.repeats, **{"render.size": 128})
        runs["256"] = best(args.repeats, **{"render.size": 256})
        plain = dataclasses.replace(models, generator=load_generator(paths.cgan, models.device)[0])
        runs["naive"] = best(1, plain, **{"render.size": 128, "render.batch_size": 1})
        videos_720p, shards_720p, target_720p = make_720p(paths.videos, paths.shards, target, scratch, base)
        full = {"full": {}, "720p": {"shards": shards_720p, "videos": videos_720p, "target": target_720p}}
        for name, where in full.items():
            runs[f"full_{name}"] = best(args.repeats, output="full", **where)
        runs["full_batch128"] = best(args.repeats, output="full", **{"render.batch_size": 128})
        composite = layouts.composite
        layouts.composite = seamless_clone
        try:
            for name, where in full.items():
                runs[f"seamless_{name}"] = best(1, output="full", **where)
        finally:
            layouts.composite = composite

    def factor(key: str) -> float:
        return round(runs[key].realtime_factor, 2)

    print(
        json.dumps(
            {
                "device": str(models.device)
                if models.device.type != "cpu"
                else f"cpu ({platform.processor() or platform.machine()})",
                "torch_threads": torch.get_num_threads(),
                "audio": str(audio),
                "audio_seconds": round(runs["128"].audio_seconds, 3),
                "frames": runs["128"].frames,
                "target": target,
                "face_size": models.cgan_artifact.face_size,
                "realtime_factor": factor("128"),
                "realtime_factor_256": factor("256"),
                "naive_realtime_factor": factor("naive"),
                "realtime_factor_full": factor("full_full"),
                "realtime_factor_720p": factor("full_720p"),
                "batch128_realtime_factor_full": factor("full_batch128"),
                "seamless_clone_realtime_factor_full": factor("seamless_full"),
                "seamless_clone_realtime_factor_720p": factor("seamless_720p"),
                "speedup_vs_seamless_clone_full": round(factor("full_full") / factor("seamless_full"), 2),
                "speedup_vs_seamless_clone_720p": round(factor("full_720p") / factor("seamless_720p"), 2),
                "preset": base.render.preset,
                "batch_size": base.render.batch_size,
            }
        )
    )


if __name__ == "__main__":
    main()
