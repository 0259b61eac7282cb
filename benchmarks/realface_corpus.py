"""The real-faces corpus that benchmarks/realface.py adapts from, built with the project's own stages.

    python benchmarks/realface_corpus.py [--work DIR] [--sources FILE] [--override KEY=VALUE ...]

Two projects under DIR (default: .cache/realface of this checkout), laid out as any project
(tasks/config/paths.py):

    DIR/frame   data.source=sources read from FILE (default data/sources/real_faces.txt: 14 people of
                ../shared/fixtures/real, none of the clips realface.py measures on), made by
                `python -m flows.ingest`, `flows.preprocess`, `models.training.train_lstm` and
                `models.training.train_cgan` with --root, as `dvc repro` runs them: the frame generator
                (cgan.condition=frame) and the LSTM
    DIR/noise   the paper's generator (cgan.condition=noise) trained on DIR/frame's rows: realface's
                noise_ baseline

Both train for CORPUS_EPOCHS epochs on every video (no finetune epochs: the corpus generator is the start
of every adaptation, not one person's). A project whose artifacts exist and whose stamp (the sources,
the params its stages read, and the overrides) matches is kept; else it is rebuilt from nothing. About
15 min on 2 CPU cores. Prints the two roots as one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.config.params import load_params, parse_override
from tasks.config.paths import Paths

SOURCES = ROOT / "data" / "sources" / "real_faces.txt"
WORK = ROOT / ".cache" / "realface"
CORPUS_EPOCHS = {"frame": 12, "noise": 10}
STAMP = "realface-corpus.json"
# params sections no stage of the corpus reads: a change there (a new adapt setting, say) keeps it
UNUSED_SECTIONS = {"demo", "evaluate", "adapt", "provenance"}


def _stage(module: str, root: Path, *extra: str) -> None:
    """One stage, run as dvc.yaml runs it (from the project root, so that relative sources resolve)."""
    command = [sys.executable, "-m", module, "--root", str(root), *extra]
    print(f"realface corpus: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    subprocess.run(command, cwd=ROOT, check=True, stdout=sys.stderr)


def _project(folder: Path, overrides: dict[str, str], stamp: dict) -> tuple[Paths, bool]:
    """(the project in `folder`, whether it is built already); an outdated one is removed first. Its
    params.yaml is written anew either way: a kept corpus differs only in UNUSED_SECTIONS, which the
    benchmarks read from it (adapt's settings, say) and must be today's."""
    paths = Paths.at(folder)
    stamp_file = folder / STAMP
    built = stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp and paths.cgan.is_file()
    if not built:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    params = load_params(ROOT / "params.yaml", overrides)
    paths.params.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return paths, built


def build(work: Path = WORK, sources: Path = SOURCES, overrides: dict[str, str] | None = None) -> dict:
    """{"frame": its root, "noise": its root}, each built unless it already is."""
    sources = Path(sources).resolve()
    if not sources.is_file():
        raise SystemExit(f"{sources}: no such sources file")
    used = load_params(ROOT / "params.yaml").model_dump(mode="json", exclude=UNUSED_SECTIONS)
    digest = hashlib.sha256(sources.read_bytes() + json.dumps(used, sort_keys=True).encode()).hexdigest()
    roots = {}
    for condition, epochs in CORPUS_EPOCHS.items():
        settings = {"data.source": "sources", "data.sources_file": str(sources), "cgan.condition": condition,
                    "cgan.epochs": str(epochs), "cgan.finetune_epochs": "0", **(overrides or {})}
        paths, built = _project(Path(work) / condition, settings,
                                {"sources_and_params": digest, "overrides": settings})
        roots[condition] = str(paths.root)
        if built:
            continue
        if condition == "frame":
            for module in ("flows.ingest", "flows.preprocess", "models.training.train_lstm"):
                _stage(module, paths.root)
            _stage("models.training.train_cgan", paths.root)
        else:  # the frame project's rows
            _stage("models.training.train_cgan", paths.root, "--shards", str(Paths.at(roots["frame"]).shards))
        (paths.root / STAMP).write_text(json.dumps({"sources_and_params": digest, "overrides": settings}))
    return roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--sources", type=Path, default=SOURCES)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(json.dumps(build(args.work, args.sources, dict(map(parse_override, args.override)))))


if __name__ == "__main__":
    main()
