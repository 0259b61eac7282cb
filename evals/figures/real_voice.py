"""A held-out person's speech on the Obama target, full frame, with the opening asked for over the
speaker's own: the README's real-voices figure.

    python -m evals.figures.real_voice [--speech may_5s] [--target obama] [--seconds 420]
                                       [--out docs/real_voice.jpg]

The speech: a clip of evals/speech.py's held-out people (their real mouth is known). The LSTM: the one
evals/speech.py trained last (run it first). The target: Obama, adapted (`reenact adapt`, --seconds of
fine-tuning, once) from his weekly address into the speech project's targets/. The figure: frames of the
full-frame render at six moments, and below them the mouth opening over time, each in units of its own
std (the speaker's real one, and the one asked of Obama), with mouth_open_r and how widely the mouth
asked of the target swings over the target's own range in the title. Needs
the real fixtures (tasks/config/paths.py: REAL_FIXTURES); without them it stops in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from evals.speech import (
    HELD_OUT,
    OBAMA,
    WORK,  # noqa: F401  where it writes (its project), as tests/test_evals.py reads
    say,
    trained_lstm,
)
from models.rendering.render import RenderOptions, load_models, render, resolve_target
from models.training.data import load_video
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths
from tasks.rows.decode import iter_frames
from tasks.rows.landmarks import lips_opening

MOMENTS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)


def adapted(project: Paths, name: str, seconds: float) -> None:
    """Obama adapted into the project's targets/NAME unless he is there already."""
    if (project.target_dir(name) / "target.json").is_file():
        return
    say(f"real voice: adapting {OBAMA} as {name} ({seconds:.0f} s)")
    subprocess.run([sys.executable, "-m", "flows.cli", "adapt", str(project.videos / f"{OBAMA}.mp4"),
                    "--name", name, "--seconds", str(seconds), "--root", str(project.root)],
                   cwd=PROJECT_ROOT, check=True, stdout=sys.stderr)


def trace(real: np.ndarray, asked: np.ndarray, fps: float, title: str, width: int) -> Image.Image:
    """The two openings over time, each over its own std, as an image `width` pixels wide."""
    figure, axes = plt.subplots(figsize=(width / 100, 2.2), dpi=100)
    t = np.arange(len(real)) / fps
    for values, label, colour in ((real, "the speaker's own mouth (never heard)", "#444444"),
                                  (asked, "the mouth asked of the target", "#d62728")):
        axes.plot(t, (values - np.nanmean(values)) / np.nanstd(values), label=label, color=colour, lw=1.4)
    for moment in MOMENTS:
        axes.axvline(moment * t[-1], color="#999999", lw=0.8, ls=":")
    axes.set_xlabel("seconds")
    axes.set_ylabel("opening / its std")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return Image.open(buffer).convert("RGB")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.figures.real_voice",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", default="may_5s", choices=HELD_OUT)
    parser.add_argument("--target", default="obama")
    parser.add_argument("--seconds", type=float, default=420.0, help="adapt's budget when it has to adapt")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "real_voice.jpg")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    project, lstm = trained_lstm()
    adapted(project, args.target, args.seconds)
    params = load_params(project.params)
    target = resolve_target(project, params, args.target)
    target = dataclasses.replace(target, models=load_models(lstm, target.paths.cgan, params.device))
    out = project.renders / f"{args.speech}_on_{args.target}.mp4"
    lips_file = project.root / "real_voice_lips.npy"
    result = render(project.videos / f"{args.speech}.mp4", out, target, params,
                    RenderOptions(output="full", lips_out=lips_file))
    say(f"real voice: {out}: {result.frames} frames in {result.wall_seconds:.1f} s")
    speaker = load_video(project.shards, args.speech)
    indices = list(target.models.cgan_artifact.lip_indices)
    asked = lips_opening(np.load(lips_file), indices)
    real = np.where(speaker.face_found, lips_opening(np.nan_to_num(speaker.lips), indices), np.nan)
    count = min(len(asked), len(real))
    asked, real = asked[:count], real[:count]
    ok = np.isfinite(real)
    r = float(np.corrcoef(asked[ok], real[ok])[0, 1])
    own = target.rows.lips[np.isfinite(target.rows.lips).all(1)]
    amp = float(np.std(asked) / np.std(lips_opening(own, indices)))  # the target's swing over its own
    frames = list(iter_frames(out, params.preprocess.fps))
    picked = [Image.fromarray(frames[min(len(frames) - 1, round(m * (count - 1)))]) for m in MOMENTS]
    side = 256
    strip = Image.new("RGB", (side * len(picked), side), "white")
    for i, frame in enumerate(picked):
        strip.paste(frame.resize((side, round(side * frame.height / frame.width))), (i * side, 0))
    title = (f"{args.speech}'s speech on {args.target}: mouth_open_r {r:.2f} against the speaker's own "
             f"opening; the asked opening swings {amp:.2f}x {args.target}'s own")
    plot = trace(real, asked, params.preprocess.fps, title, strip.width)
    figure = Image.new("RGB", (strip.width, strip.height + plot.height), "white")
    figure.paste(strip, (0, 0))
    figure.paste(plot, (0, strip.height))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out, quality=88)
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
