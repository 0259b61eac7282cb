"""Where everything of a reenact project lives: the one place that spells the project's layout.

    paths = Paths.at()                      # the current folder is the project root
    paths = Paths.at("/srv/reenact")        # another project root
    paths = Paths.at(shards="/fast/shards") # one location moved; the rest follow the root

Every entry point (DVC stages, Prefect flows, the CLI, the web app) builds one `Paths` and passes it
down; nothing else writes a layout path out. A location given on its own (`--shards`, `--lstm`)
replaces that field only; what derives from it (the videos table inside the shards folder) follows
it. Paths stay relative when the root is, so messages read `artifacts/lstm.pt`, as DVC writes them.
ARCHITECTURE.md shows the layout on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

VIDEOS_TABLE = "_videos.parquet"
# The checkout this code runs from, and the real talking-head fixtures that sit beside it, never in it (a
# folder with SOURCES.md and the clips; $REENACT_FIXTURES points elsewhere; ARCHITECTURE.md, The shipped
# base). Evaluations, the base's rebuild and the real_media tests read them; a fresh clone has none.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
REAL_FIXTURES = Path(os.environ.get("REENACT_FIXTURES") or PROJECT_ROOT.parent / "shared/fixtures/real")


def require_real_fixtures() -> Path:
    """REAL_FIXTURES, or SystemExit with one line saying they are missing and what needs them."""
    if not (REAL_FIXTURES / "SOURCES.md").is_file():
        raise SystemExit(f"{REAL_FIXTURES}: no real fixtures here (SOURCES.md and the clips it lists); this "
                         "needs them beside the project, or $REENACT_FIXTURES naming their folder")
    return REAL_FIXTURES
TARGET_RECORD = "target.json"  # inside an adapted target's folder: what `reenact adapt` made it from


@dataclass(frozen=True)
class Paths:
    """The project's folders and files. Build it with `Paths.at(root, **overrides)`."""

    root: Path
    params: Path
    sources: Path
    raw: Path
    videos: Path
    shards: Path
    artifacts: Path
    lstm: Path
    cgan: Path
    checkpoints: Path
    dvclive: Path
    reports: Path
    renders: Path
    targets: Path

    @classmethod
    def at(cls, root: str | Path = ".", **overrides: str | Path | None) -> Paths:
        """The standard layout under `root`; each override (None: not given) replaces one field,
        and the fields derived from a moved folder follow it (raw → videos, artifacts → lstm, cgan)."""
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"Paths has no field {', '.join(sorted(unknown))}")
        given = {key: Path(value) for key, value in overrides.items() if value is not None}
        root = Path(root)
        raw = given.get("raw", root / "data" / "raw")
        artifacts = given.get("artifacts", root / "artifacts")
        layout = {
            "root": root,
            "params": root / "params.yaml",
            "sources": root / "data" / "sources",
            "raw": raw,
            "videos": raw / "videos",
            "shards": root / "data" / "shards",
            "artifacts": artifacts,
            "lstm": artifacts / "lstm.pt",
            "cgan": artifacts / "cgan.pt",
            "checkpoints": root / "checkpoints",
            "dvclive": root / "dvclive",
            "reports": root / "reports",
            "renders": root / "renders",
            "targets": root / "targets",
        }
        return cls(**{**layout, **given})

    def moved(self, **overrides: str | Path | None) -> Paths:
        """A copy with the given fields replaced (None: kept as it is)."""
        return replace(self, **{key: Path(value) for key, value in overrides.items() if value is not None})

    # Files and folders inside the fields above: they move with their folder.
    @property
    def manifest(self) -> Path:
        """One row per source of the last ingest."""
        return self.raw / "manifest.parquet"

    @property
    def download_archive(self) -> Path:
        """yt-dlp's record of what is downloaded, so a rerun skips it."""
        return self.raw / "download_archive.txt"

    @property
    def videos_table(self) -> Path:
        """One row per video of the last preprocess run, inside the shards folder."""
        return self.shards / VIDEOS_TABLE

    @property
    def metrics(self) -> Path:
        """What `evaluate` measured, flat JSON for `dvc metrics show`."""
        return self.reports / "metrics.json"

    @property
    def runs(self) -> Path:
        """Renders made by `reenact render` and the render deployment: a new file per run."""
        return self.renders / "runs"

    @property
    def app_renders(self) -> Path:
        """Renders made by the web app."""
        return self.renders / "app"

    def target_dir(self, name: str) -> Path:
        """The folder of the target `name` adapted by `reenact adapt` (models/training/adapt.py)."""
        return self.targets / name

    def in_target(self, folder: str | Path) -> Paths:
        """The project as a render of an adapted target sees it: the target's own generator (cgan), rows
        (shards) and footage (raw, videos) in `folder` (target_dir(name), or the folder it is made in)
        and the LSTM it was adapted beside (a target adapted before targets kept one renders with the
        project's: models/rendering/loading.py), its record at `folder / TARGET_RECORD`; everything else
        the project's."""
        folder = Path(folder)
        return self.moved(raw=folder, videos=folder / "videos", shards=folder / "shards",
                          cgan=folder / "cgan.pt", lstm=folder / "lstm.pt")

    def checkpoint_dir(self, stage: str) -> Path:
        """The last epoch of a training stage ("lstm", "cgan"), which a rerun resumes from."""
        return self.checkpoints / stage

    def live_dir(self, stage: str) -> Path:
        """DVCLive's folder for a training stage."""
        return self.dvclive / stage
