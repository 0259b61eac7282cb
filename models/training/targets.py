"""The registry of adapted targets (ARCHITECTURE.md, Adapted targets): what `reenact adapt`
(models/training/adapt.py) registers in paths.target_dir(NAME), read back for `reenact targets`, the app
and every render (models/rendering/loading.py: resolve_target). Light on purpose: reading a target
imports no training code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.errors import AdaptError
from tasks.config.paths import TARGET_RECORD, Paths
from tasks.table.shards import part_files


@dataclass(frozen=True)
class Adapted:
    """A registered target: where its files are and what it was made from (its TARGET_RECORD)."""

    name: str
    folder: Path  # paths.target_dir(name)
    paths: Paths  # the project as a render of this target sees it: its generator, rows and footage
    source: str  # the clip it was made from (absolute)
    sha256: str  # of the footage
    frames: int  # rows of the clip at preprocess.fps
    frames_with_face: int
    train_frames: int  # the first frames fine-tuned on (train_fraction of them); the rest held out
    steps: int  # fine-tuning steps done
    preprocess_seconds: float
    finetune_seconds: float
    adapt_seconds: float  # the whole adapt, checks to registration
    created: str  # UTC, ISO 8601
    base: str = "project"  # what it started from: "shipped" (models/base/), or the project's cgan file
    base_sha256: str = ""  # of that generator's file ("": adapted before targets recorded it)
    base_videos: int = 0  # the videos that generator was trained on (0: not recorded)
    face_size: int = 128  # the side of its crops and of what its generator paints (adapt.face_size)
    footage: dict[str, Any] | None = None  # what adapt saw in the clip, its warning (training/footage.py)
    held_out: dict[str, Any] | None = None  # figures of the frames held out of fine-tuning, when measured

    @property
    def video(self) -> Path:
        """The footage renders composite into."""
        return self.paths.videos / f"{self.name}.mp4"

    def record(self) -> dict[str, Any]:
        """What TARGET_RECORD holds: all but where the files are."""
        return {key: value for key, value in asdict(self).items() if key not in ("folder", "paths")}


def read_target(paths: Paths, name: str) -> Adapted:
    """The registered target `name`; AdaptError when there is none."""
    record = paths.target_dir(name) / TARGET_RECORD
    if not record.is_file():
        raise AdaptError(f"target {name!r}: not adapted ({record} absent)")
    folder = paths.target_dir(name)
    return Adapted(folder=folder, paths=paths.in_target(folder), **json.loads(record.read_text()))


def missing_parts(paths: Paths, name: str) -> list[str]:
    """What the target folder `name` lacks of what a render of it reads: its record, generator, rows and
    footage (an empty list: it is complete)."""
    folder = paths.target_dir(name)
    mine = paths.in_target(folder)
    parts = {TARGET_RECORD: (folder / TARGET_RECORD).is_file(), mine.cgan.name: mine.cgan.is_file(),
             "shards": bool(part_files(mine.shards, name)),
             "footage": (mine.videos / f"{name}.mp4").is_file()}
    return [part for part, present in parts.items() if not present]


def list_targets(paths: Paths) -> list[Adapted]:
    """Every registered target of the project that renders, by name: folders being made are hidden and
    skipped, and so is a folder that lacks a part a render reads (missing_parts) or whose record is
    unreadable."""
    if not paths.targets.is_dir():
        return []
    names = sorted(p.name for p in paths.targets.iterdir() if not p.name.startswith(".") and p.is_dir())
    found = []
    for name in (name for name in names if not missing_parts(paths, name)):
        try:
            found.append(read_target(paths, name))
        except (ValueError, TypeError):  # a record that is not JSON or not a target's
            continue
    return found



def describe(target: Adapted) -> list[str]:
    """What `reenact targets` says of a target: what it is made of, where it started from, what adapt saw
    in its clip and, when adapt measured them (--hold-out), the figures of its held-out frames."""
    t = target
    first = f"{t.name:<16} {t.frames:>6} frames  {t.steps:>5} steps  {t.adapt_seconds:>6.0f} s  {t.created}"
    lines = [f"{first}  {t.source}", f"    base: {_base(t)}; painted at {t.face_size} px"]
    if t.footage:
        f = t.footage
        warning = f"; warned of {f['warning'].removeprefix('footage: ')}" if f.get("warning") else ""
        lines.append(f"    footage: a face in {f.get('face_share', 0):.0%} of frames, head turned "
                     f"{f.get('yaw_median_deg')}° (median), face {f.get('face_px_median')} px wide, "
                     f"sharpness {f.get('sharpness_median')}{warning}")
    if t.held_out:
        held = f"the last {1 - t.train_frames / max(t.frames, 1):.0%}"
        lines.append(f"    held-out frames ({held}): {_held_out(t.held_out) or 'not measurable'}")
    return lines


def _base(t: Adapted) -> str:
    """`shipped (sha256 0123456789ab, trained on 37 videos)`."""
    if not t.base_sha256:
        return t.base
    trained = f", trained on {t.base_videos} videos" if t.base_videos else ""
    return f"{t.base} (sha256 {t.base_sha256[:12]}{trained})"


def _held_out(figures: dict[str, Any]) -> str:
    """`mouth_psnr 31.20 dB (nearest-lips 29.10 dB, mean face 27.00 dB); mouth_ssim ...`."""
    said = []
    for key, form in (("mouth_psnr", "{:.2f} dB"), ("mouth_ssim", "{:.3f}")):
        if figures.get(key) is None:
            continue
        baselines = [f"{name} {form.format(figures[f'baseline_{kind}/{key}'])}"
                     for kind, name in (("nearest", "nearest-lips"), ("mean", "mean face"))
                     if figures.get(f"baseline_{kind}/{key}") is not None]
        against = f" ({', '.join(baselines)})" if baselines else ""
        said.append(f"{key} {form.format(figures[key])}{against}")
    return "; ".join(said)
