"""A held-out real speaker's speech on a real target, as a render panel, and one frame of it for the README.

    python -m evals.figures.speech_panel [--speech may_5s] [--target WDA_AlexandriaOcasioCortez_000]
                                         [--cgan FILE] [--at SECONDS] [--out docs/speech_panel.jpg]

The speech: a clip of evals/speech.py's held-out people (its audio; its real lips are known, so the
panel traces the real mouth opening beside the one asked for, and the loudness). The LSTM: the one
evals/speech.py trained last (run it first). The target: a real person of the real-faces corpus,
painted by that corpus's frame generator (evals/real_faces_corpus.py, built once into
.cache/realface; or --cgan, a generator trained on the same rows, e.g. another checkout's
.cache/realface/frame/artifacts/cgan.pt). Needs the real fixtures (tasks/config/paths.py: REAL_FIXTURES);
without them it stops in one line. The render is `reenact render`'s (output "panel": the target's
frame beside the composite, the traces below), into the speech project's renders/; the frame at --at
seconds is written to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from evals.speech import (
    HELD_OUT,
    WORK,  # noqa: F401  where it writes (its project), as tests/test_evals.py reads
    say,
    trained_lstm,
)
from models.rendering.render import RenderOptions, load_models, render, resolve_target
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT
from tasks.rows.decode import iter_frames

TARGET = "WDA_AlexandriaOcasioCortez_000"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.figures.speech_panel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", default="may_5s", choices=HELD_OUT)
    parser.add_argument("--target", default=TARGET)
    parser.add_argument("--cgan", type=Path, help="default: the real-faces corpus's frame generator")
    parser.add_argument("--at", type=float, default=2.5, help="seconds into the render")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "speech_panel.jpg",
                        help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    project, lstm = trained_lstm()
    if args.cgan is None:
        from evals.real_faces_corpus import real_faces_corpus

        args.cgan = real_faces_corpus()["frame"].cgan
    params = load_params(project.params)
    out = project.renders / f"{args.speech}_on_{args.target}.mp4"
    target = resolve_target(project, params, args.target, load_models(lstm, args.cgan, params.device))
    result = render(project.videos / f"{args.speech}.mp4", out, target, params,
                    RenderOptions(output="panel", real=args.speech))
    say(f"speech panel: {out}: {result.frames} frames in {result.wall_seconds:.1f} s")
    wanted = round(args.at * params.preprocess.fps)
    frame = next(f for i, f in enumerate(iter_frames(out, params.preprocess.fps)) if i == wanted)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
