"""Real people speaking another person's speech: the README's figure, our generator beside the paper's.

    python -m evals.figures.real_people [CLIP ...] [--audio WAV] [--seconds 150] [--out docs/real_people.jpg]

CLIP defaults to may_5s, speaker_15s and map_5s of the real fixtures (tasks/config/paths.py: REAL_FIXTURES;
without them it stops in one line; none of them in the real-faces corpus), --audio to RD_Radio31_000.wav
there (another speaker). From the real-faces corpus (evals/real_faces_corpus.py, built once
into --work) each clip is made a target twice, as a user does:
`reenact adapt CLIP --name NAME --seconds S` in the frame project (cgan.condition=frame) and in the noise
project (the paper's generator, adapted the same way); then `reenact render --audio WAV --target NAME`
in each. The figure: one row per person, the full frame of our render at the middle of the speech, then
the lower face (the frame warped into the target's aligned crop, its lower half, enlarged) of ours at
three moments, then the paper's at the same three. Prints one JSON object per person (adapt and render
seconds, frames) and writes the figure and the renders (--renders, default .cache/real_people).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from evals.real_faces_corpus import WORK, real_faces_corpus
from models.evaluation.baselines import read_face_rows
from models.rendering.target import pingpong
from models.training.targets import read_target
from tasks.config.paths import PROJECT_ROOT, REAL_FIXTURES, Paths, require_real_fixtures
from tasks.ingest.video import video_id_of
from tasks.rows.decode import iter_frames

CLIPS = [REAL_FIXTURES / f"{name}.mp4" for name in ("may_5s", "speaker_15s", "map_5s")]
AUDIO = REAL_FIXTURES / "RD_Radio31_000.wav"
MOMENTS = (0.3, 0.5, 0.7)  # of the speech
ROW_HEIGHT = 192


def reenact(*args: str | Path) -> str:
    command = [str(Path(sys.executable).parent / "reenact"), *map(str, args)]
    print("real people: reenact " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stdout


def lower_faces(video: Path, target: Paths, name: str, fps: float, picks: list[int]) -> list[np.ndarray]:
    """The lower half of each picked output frame, warped into the shown target frame's aligned crop."""
    rows, total = read_face_rows(target.shards, name)
    by_frame = {int(f): i for i, f in enumerate(rows.frames)}
    out = []
    for index, frame in enumerate(iter_frames(video, fps)):
        if index in picks:
            row = by_frame[int(pingpong(index, total))]
            crop = cv2.warpAffine(frame, rows.crops[row].astype(np.float64), (rows.size, rows.size),
                                  flags=cv2.INTER_AREA)
            out.append(crop[rows.size // 2 :])
    return out


def person(clip: Path, corpus: dict[str, Paths], audio: Path, seconds: float,
           renders: Path) -> tuple[dict, np.ndarray]:
    name, fps, tiles, record = video_id_of(clip), 30.0, {}, {"clip": clip.name}
    lstm = corpus["frame"].lstm
    for method, root in (("ours", corpus["frame"].root), ("paper", corpus["noise"].root)):
        said = reenact("adapt", clip, "--name", name, "--seconds", seconds, "--replace", "--root", root,
                       "--lstm", lstm)
        record[f"{method}_adapt"] = said.strip().splitlines()[0]
        out = renders / f"{name}_{method}.mp4"
        said = reenact("render", "--audio", audio, "--out", out, "--target", name, "--root", root,
                       "--lstm", lstm)
        record[f"{method}_render"] = said.strip().splitlines()[0]
        frames = sum(1 for _ in iter_frames(out, fps))
        picks = [int(m * frames) for m in MOMENTS]
        target = read_target(Paths.at(root), name).paths
        tiles[method] = lower_faces(out, target, name, fps, picks)
        if method == "ours":
            middle = next(f for i, f in enumerate(iter_frames(out, fps)) if i == picks[1])
    scale = ROW_HEIGHT / middle.shape[0]
    row = [cv2.resize(middle, (round(middle.shape[1] * scale), ROW_HEIGHT), interpolation=cv2.INTER_AREA)]
    for method in ("ours", "paper"):
        for tile in tiles[method]:
            row.append(cv2.resize(tile, (2 * ROW_HEIGHT, ROW_HEIGHT), interpolation=cv2.INTER_CUBIC))
    return record, np.concatenate([np.pad(t, ((0, 0), (2, 2), (0, 0))) for t in row], 1)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.figures.real_people",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, default=CLIPS, metavar="CLIP")
    parser.add_argument("--audio", type=Path, default=AUDIO, help="default: %(default)s")
    parser.add_argument("--seconds", type=float, default=150.0, help="adapt's budget per target")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="where the real-faces corpus is built and kept (default: %(default)s)")
    parser.add_argument("--renders", type=Path, default=PROJECT_ROOT / ".cache" / "real_people",
                        help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "real_people.jpg",
                        help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    require_real_fixtures()  # the corpus is made of them
    missing = [str(path) for path in (*args.clips, args.audio) if not path.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: no such file")
    corpus = real_faces_corpus(args.work)
    args.renders.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in args.clips:
        record, row = person(clip, corpus, args.audio, args.seconds, args.renders)
        print(json.dumps(record), flush=True)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((2, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"real people: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
