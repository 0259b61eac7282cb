"""Rendering speed on this machine, printed as one JSON object.

    python benchmarks/render.py [AUDIO] [--threads 2] [--repeats 2] [--lstm ...] [--cgan ...]

realtime_factor: seconds of audio rendered per second of wall time, for the whole of `render()`:
probing, decoding, features, LSTM, alignment, generator, encoding (H.264 + AAC) and the rename,
at render.size 128 (realtime_factor_256: at 256, upscaled by ffmpeg). The best of `--repeats`
runs, after one warm-up render (librosa's first import costs a few seconds once per process).
naive_realtime_factor: the same pipeline done the obvious way, in the same run: the generator
as models.cgan.load_generator returns it (NCHW, where render uses channels_last) and called one
frame at a time (render.batch_size 1). AUDIO defaults to the real speech fixture if present,
else a demo clip's audio track.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.cgan import load_generator
from models.render import load_models, render
from tasks.params import load_params

REAL_SPEECH = ROOT.parent / "shared" / "fixtures" / "real" / "RD_Radio31_000.wav"


def default_audio() -> Path:
    if REAL_SPEECH.exists():
        return REAL_SPEECH
    clips = sorted((ROOT / "data" / "raw" / "videos").glob("*.mp4"))
    if not clips:
        raise SystemExit("no audio given, no real speech fixture and no data/raw/videos/*.mp4")
    return clips[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--lstm", default=str(ROOT / "artifacts" / "lstm.pt"))
    parser.add_argument("--cgan", default=str(ROOT / "artifacts" / "cgan.pt"))
    args = parser.parse_args()
    audio = args.audio or default_audio()
    torch.set_num_threads(args.threads)
    base = load_params(args.params)
    models = load_models(args.lstm, args.cgan, base.device)

    with tempfile.TemporaryDirectory(prefix="reenact-bench-") as scratch:
        out = Path(scratch) / "bench.mp4"

        def best(repeats: int, models=models, **overrides) -> dict:
            params = load_params(args.params, overrides)
            runs = [render(audio, out, models, params) for _ in range(repeats)]
            return min(runs, key=lambda run: run["wall_seconds"])

        best(1, **{"render.size": 128})
        at_128 = best(args.repeats, **{"render.size": 128})
        at_256 = best(args.repeats, **{"render.size": 256})
        plain = dataclasses.replace(models, generator=load_generator(args.cgan, models.device)[0])
        naive = best(1, plain, **{"render.size": 128, "render.batch_size": 1})

    def factor(run: dict) -> float:
        return round(run["audio_seconds"] / run["wall_seconds"], 2)

    print(json.dumps({
        "device": str(models.device) if models.device.type != "cpu" else f"cpu ({platform.processor() or platform.machine()})",
        "torch_threads": torch.get_num_threads(),
        "audio": str(audio),
        "audio_seconds": round(at_128["audio_seconds"], 3),
        "frames": at_128["frames"],
        "wall_seconds": round(at_128["wall_seconds"], 3),
        "realtime_factor": factor(at_128),
        "wall_seconds_256": round(at_256["wall_seconds"], 3),
        "realtime_factor_256": factor(at_256),
        "naive_wall_seconds": round(naive["wall_seconds"], 3),
        "naive_realtime_factor": factor(naive),
        "preset": base.render.preset,
        "batch_size": base.render.batch_size,
    }))


if __name__ == "__main__":
    main()
