"""The README's picture of the watermark: one frame of a full-frame render, unmarked and marked, and
their difference x10 (grey: none), at 100 %.

    python -m evals.figures.watermark [AUDIO] [OUT.png] [--root PROJECT] [--target ID] [--frame 7]

AUDIO defaults to RD_Radio31_000.wav of the real fixtures (tasks/config/paths.py: REAL_FIXTURES; without
them it stops in one line), OUT.png to docs/watermark.png.

It renders AUDIO unmarked (render(), as every entry point does), then puts the mark on the chosen frame
exactly as render() puts it (models/rendering/mark.py: Marker.frame through the target row's crop
transform and landmarks), so the difference is the mark alone, not two encodes'. Frame 7 (t = 0.23 s)
is at a flat peak of the 3 Hz swing: the strongest the mark ever is.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from models.rendering.mark import Marker
from models.rendering.render import RenderOptions, load_models, render, resolve_target
from models.rendering.target import pingpong, read_target_rows
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths, require_real_fixtures
from tasks.provenance.watermark import swing
from tasks.rows.decode import iter_frames

SPEECH = "RD_Radio31_000.wav"  # of the real fixtures


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.figures.watermark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", type=Path, nargs="?", help=f"default: {SPEECH} of the real fixtures")
    parser.add_argument("out", type=Path, nargs="?", default=PROJECT_ROOT / "docs" / "watermark.png",
                        help="default: %(default)s")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the project (default: %(default)s)")
    parser.add_argument("--target", default="", help="default: the first target")
    parser.add_argument("--frame", type=int, default=7)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    audio = args.audio or require_real_fixtures() / SPEECH
    if not audio.is_file():
        raise SystemExit(f"{audio}: no such file")
    paths = Paths.at(args.root.resolve())
    params = load_params(paths.params)
    models = load_models(paths.lstm, paths.cgan, params.device)
    target = args.target or min(models.cgan_artifact.lips_stats)
    with tempfile.TemporaryDirectory(prefix="reenact-mark-figure-") as scratch:
        video = Path(scratch) / "unmarked.mp4"
        options = RenderOptions(output="full", watermark=False)
        render(audio, video, resolve_target(paths, params, target, models), params, options)
        frame = next(f for i, f in enumerate(iter_frames(video, 30.0)) if i == args.frame).copy()
    rows = read_target_rows(paths.shards, target)
    row = pingpong(args.frame, len(rows))
    marked = Marker(0xDEADBEEF, 30.0).frame(
        frame.copy(), rows.crop[row], models.cgan_artifact.face_size, args.frame, rows.landmarks[row]
    )
    difference = np.clip(128 + 10 * (marked.astype(np.int16) - frame), 0, 255).astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.hstack([frame, marked, difference])).save(args.out, optimize=True)
    mse = float(np.mean((marked.astype(np.float64) - frame) ** 2))
    print(f"{args.out}: target {target}, frame {args.frame} (swing {float(swing(args.frame / 30.0)):+.2f}), "
          f"PSNR of the mark {10 * np.log10(255**2 / mse):.1f} dB")


if __name__ == "__main__":
    main()
