"""Real people speaking another person's speech: the README's figure, our generator beside the paper's.

    python benchmarks/real_people.py [CLIP ...] [--audio WAV] [--seconds 150] [--out docs/real_people.jpg]

CLIP defaults to may_5s, speaker_15s and map_5s of ../shared/fixtures/real (none of them in the
real-faces corpus), --audio to RD_Radio31_000.wav there (another speaker). From the real-faces corpus
(benchmarks/realface_corpus.py, built once) each clip is made a target twice, as a user does:
`reenact adapt CLIP --name NAME --seconds S` in the frame project (cgan.condition=frame) and in the noise
project (the paper's generator, adapted the same way); then `reenact render --audio WAV --target NAME`
in each. The figure: one row per person, the full frame of our render at the middle of the speech, then
the lower face (the frame warped into the target's aligned crop, its lower half, enlarged) of ours at
three moments, then the paper's at the same three. Prints one JSON object per person (adapt and render
seconds, frames) and writes the figure and the renders (--renders).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.realface_corpus import WORK, build
from models.evaluation.baselines import read_face_rows
from models.rendering.target import pingpong
from models.training.adapt import read_target
from tasks.config.paths import Paths
from tasks.rows.decode import iter_frames
from tasks.rows.video import video_id_of

REAL = ROOT.parent / "shared" / "fixtures" / "real"
CLIPS = [REAL / f"{name}.mp4" for name in ("may_5s", "speaker_15s", "map_5s")]
MOMENTS = (0.3, 0.5, 0.7)  # of the speech
ROW_HEIGHT = 192


def reenact(*args: str | Path) -> str:
    command = [str(Path(sys.executable).parent / "reenact"), *map(str, args)]
    print("real people: reenact " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout


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


def person(clip: Path, roots: dict, audio: Path, seconds: float, renders: Path) -> tuple[dict, np.ndarray]:
    name, fps, tiles, record = video_id_of(clip), 30.0, {}, {"clip": clip.name}
    frame_root, lstm = Path(roots["frame"]), Paths.at(roots["frame"]).lstm
    for method, root in (("ours", frame_root), ("paper", Path(roots["noise"]))):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, default=CLIPS, metavar="CLIP")
    parser.add_argument("--audio", type=Path, default=REAL / "RD_Radio31_000.wav")
    parser.add_argument("--seconds", type=float, default=150.0, help="adapt's budget per target")
    parser.add_argument("--work", type=Path, default=WORK, help="the real-faces corpus (realface_corpus.py)")
    parser.add_argument("--renders", type=Path, default=ROOT / "renders" / "real_people")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "real_people.jpg")
    args = parser.parse_args()
    roots = build(args.work)
    args.renders.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in args.clips:
        record, row = person(clip, roots, args.audio, args.seconds, args.renders)
        print(json.dumps(record), flush=True)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((2, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"real people: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
