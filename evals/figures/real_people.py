"""Real people speaking another person's speech: the README's figure, at the output's own pixels.

    python -m evals.figures.real_people [CLIP ...] [--audio WAV] [--seconds S] [--out docs/real_people.jpg]

CLIP defaults to may_5s, speaker_15s and map_5s of the real fixtures (tasks/config/paths.py:
REAL_FIXTURES; without them it stops in one line; none of them in the shipped base), --audio to
RD_Radio31_000.wav there (another speaker). Each clip is made a target as a user makes one, in a project
of this checkout's params (--renders/project): `reenact adapt CLIP --name NAME` (from the shipped base,
adapt's defaults; --seconds S its budget), then `reenact render --audio WAV --target NAME`. The figure:
one row per person, the full frame of the render at the middle of the speech (scaled to the row), then at
three moments the lower face's box in the target's real frame shown there and in the render, side by
side at the output's own pixels (nothing enlarged: what a viewer of the mp4 sees). Prints one JSON
object per person (adapt and render lines) and writes the figure and the renders (--renders, default
.cache/real_people).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from evals.realface_frames import frame_box
from models.evaluation.baselines import read_face_rows
from models.networks.mask import lower_face_mask
from models.rendering.target import pingpong
from models.training.targets import read_target
from tasks.config.paths import PROJECT_ROOT, REAL_FIXTURES, Paths, require_real_fixtures
from tasks.ingest.video import video_id_of
from tasks.rows.decode import iter_frames

CLIPS = [REAL_FIXTURES / f"{name}.mp4" for name in ("may_5s", "speaker_15s", "map_5s")]
AUDIO = REAL_FIXTURES / "RD_Radio31_000.wav"
MOMENTS = (0.3, 0.5, 0.7)  # of the speech
ROW_HEIGHT = 256  # the full frame's, scaled; the lower faces are shown at their own pixels
MARGIN = 0.08  # of the box's side, added around the lower face's box
SHOWN_FROM = 0.05  # the compositing mask's value where the box begins (its Gaussian tail reaches further)


def reenact(*args: str | Path) -> str:
    command = [str(Path(sys.executable).parent / "reenact"), *map(str, args)]
    print("real people: reenact " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stdout


def lower_face_box(crop: np.ndarray, landmarks: np.ndarray, size: int,
                   shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The frame pixels of the box where the compositing mask reaches SHOWN_FROM (in a crop, `crop` its
    transform), MARGIN around it."""
    x0, y0, x1, y1 = frame_box(lower_face_mask(landmarks, size) >= SHOWN_FROM, crop)
    pad = MARGIN * max(x1 - x0, y1 - y0)
    x0, y0 = max(int(x0 - pad), 0), max(int(y0 - pad), 0)
    return np.s_[y0 : min(int(y1 + pad) + 1, shape[0])], np.s_[x0 : min(int(x1 + pad) + 1, shape[1])]


def lower_faces(video: Path, target: Paths, name: str, fps: float,
                picks: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(at each picked output frame, the target's real frame shown there and the output side by side, cut
    to the lower face's box at the output's own pixels; the picked output frames whole)."""
    rows, total = read_face_rows(target.shards, name)
    by_frame = {int(f): i for i, f in enumerate(rows.frames)}
    shown = {index: int(pingpong(index, total)) for index in picks}
    real = {i: frame for i, frame in enumerate(iter_frames(target.videos / f"{name}.mp4", fps))
            if i in shown.values()}
    out, whole = [], []
    for index, frame in enumerate(iter_frames(video, fps)):
        if index in picks:
            row = by_frame[shown[index]]
            box = lower_face_box(rows.crops[row], rows.landmarks[row], rows.size, frame.shape)
            out.append(np.concatenate([real[shown[index]][box], np.zeros_like(frame[box][:, :4]),
                                       frame[box]], 1))
            whole.append(frame)
    return out, whole


def person(clip: Path, project: Path, audio: Path, seconds: float | None,
           renders: Path) -> tuple[dict, np.ndarray]:
    name, fps = video_id_of(clip), 30.0
    budget = () if seconds is None else ("--seconds", seconds)
    said = reenact("adapt", clip, "--name", name, *budget, "--replace", "--root", project)
    record = {"clip": clip.name, "adapt": said.strip().splitlines()[0]}
    out = renders / f"{name}.mp4"
    said = reenact("render", "--audio", audio, "--out", out, "--target", name, "--root", project)
    record["render"] = said.strip().splitlines()[0]
    frames = sum(1 for _ in iter_frames(out, fps))
    picks = [int(m * frames) for m in MOMENTS]
    tiles, shown = lower_faces(out, read_target(Paths.at(project), name).paths, name, fps, picks)
    middle = shown[1]
    height = max(ROW_HEIGHT, *(t.shape[0] for t in tiles))
    scale = ROW_HEIGHT / middle.shape[0]
    row = [cv2.resize(middle, (round(middle.shape[1] * scale), ROW_HEIGHT), interpolation=cv2.INTER_AREA),
           *tiles]
    return record, np.concatenate([np.pad(t, ((0, height - t.shape[0]), (6, 6), (0, 0))) for t in row], 1)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.figures.real_people",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, default=CLIPS, metavar="CLIP")
    parser.add_argument("--audio", type=Path, default=AUDIO, help="default: %(default)s")
    parser.add_argument("--seconds", type=float, help="adapt's budget per target (default: adapt.seconds)")
    parser.add_argument("--renders", type=Path, default=PROJECT_ROOT / ".cache" / "real_people",
                        help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "real_people.jpg",
                        help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    require_real_fixtures()  # the clips and the speech are of them
    missing = [str(path) for path in (*args.clips, args.audio) if not path.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: no such file")
    project = args.renders / "project"  # this checkout's params; its targets are the figure's
    project.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "params.yaml", project / "params.yaml")
    rows = []
    for clip in args.clips:
        record, row = person(clip, project, args.audio, args.seconds, args.renders)
        print(json.dumps(record), flush=True)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((2, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"real people: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
