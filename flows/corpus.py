"""A corpus built into a project folder of its own, and the real-faces base that ships in models/base/.

    python -m flows.corpus build SOURCES --root DIR [--override KEY=VALUE ...]
    python -m flows.corpus base [--work DIR]          # what `dvc repro base` runs
    python -m flows.corpus base-lstm [--work DIR]     # the shipped LSTM alone, the generator kept

`build` runs the project's own stages (`flows.ingest`, `flows.preprocess`, `models.training.train_lstm`,
`models.training.train_cgan`, `models.evaluation.evaluate`) with `--root DIR`, as `dvc repro` runs them, on
the sources listed in SOURCES, with this project's params.yaml and the overrides written to DIR/params.yaml
and given to each stage as `--override` too, so that each stage's log names them. The workspace (its
params.yaml, data/, artifacts/) is never written: an interrupted build (SIGINT, SIGTERM, SIGHUP) stops its
stage and leaves the workspace as it was, and DIR as far as it got. A DIR whose stamp (the sources, the
params, the overrides and the row-making code: tasks/rows/rowkey.py) matches and whose models exist is
kept. Progress: the stages done of those to run, a line at least every 15 s (tasks/config/progress.py),
beside each stage's own output on stderr.

`base` builds data/sources/base.txt (the real fixtures beside the project whose licences allow the
weights to be shared) into --work (default .cache/base) and copies its LSTM and frame generator,
with a model card, into models/base/ (ARCHITECTURE.md, The shipped base). `reenact adapt` starts
from them (adapt.base: shipped).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from flows.stopping import Stopped, stop_on_signals
from tasks.config.entry import Overrides, parse_overrides
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths
from tasks.config.progress import Progress
from tasks.rows.rowkey import code_digest

STAMP = "corpus.json"
STAGES = ("flows.ingest", "flows.preprocess", "models.training.train_lstm", "models.training.train_cgan",
          "models.evaluation.evaluate")
ROWS = STAGES[:2]  # the frame table alone (evals/speech.py trains its own LSTMs on it)
TRAINING = STAGES[2:4]
# what each stage leaves (a Paths field): a corpus is kept only while its last stage's is there
MADE = dict(zip(STAGES, ("manifest", "videos_table", "lstm", "cgan", "metrics"), strict=True))
# params sections no stage of a corpus build reads: a change there (a new adapt setting) keeps the corpus
UNUSED_SECTIONS = {"demo", "adapt", "provenance"}
ROW_SECTIONS = {"data", "preprocess"}  # all that ingest and preprocess read (dvc.yaml)
BASE_WORK = PROJECT_ROOT / ".cache" / "base"  # where the shipped base is built (flows/base.py)
BASE_LSTM_WORK = PROJECT_ROOT / ".cache" / "base-lstm"  # where its LSTM alone is retrained



def _stage(module: str, root: Path, *extra: str) -> None:
    """One stage, run as dvc.yaml runs it (from the project root, so that relative sources resolve). An
    exception here (a signal's Stopped included) ends the stage first: SIGTERM, then SIGKILL after 20 s."""
    command = [sys.executable, "-m", module, "--root", str(root), *extra]
    print(f"corpus: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=sys.stderr) as process:
        try:
            code = process.wait()
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if code:
        raise subprocess.CalledProcessError(code, command)


def override_options(settings: dict[str, Any]) -> list[str]:
    """`--override KEY=VALUE` for each setting, the value as JSON (which the stages read as YAML)."""
    return [option for key, value in settings.items()
            for option in ("--override", f"{key}={json.dumps(value)}")]


def build_corpus(root: Path, sources: Path, overrides: dict[str, Any] | None = None,
                 stages: tuple[str, ...] = STAGES, rows: Paths | None = None) -> Paths:
    """The project at `root` built from `sources` (kept when its stamp matches); its Paths.

    `stages`: those of STAGES to run, in order (ROWS: the frame table alone, stamped with the params it
    reads only). `rows`: a corpus built already whose frame table and footage `stages` (training stages
    only) train on instead of their own, as `--shards`; its stamp is part of this one's.
    The params.yaml at `root` is written anew even when the corpus is kept: it differs then only in
    sections its stages do not read, which a caller may (an evaluation reads adapt's) and which must be
    today's."""
    sources = Path(sources).resolve()
    if not sources.is_file():
        raise SystemExit(f"{sources}: no such sources file")
    if rows is not None and not set(stages) <= set(TRAINING):
        raise ValueError(f"on another corpus's rows only {TRAINING} run, not {stages}")
    settings = {"data.source": "sources", "data.sources_file": str(sources), **(overrides or {})}
    params = load_params(PROJECT_ROOT / "params.yaml", settings)
    if set(stages) <= set(ROWS):
        used = params.model_dump(mode="json", include=ROW_SECTIONS)
    else:
        used = params.model_dump(mode="json", exclude=UNUSED_SECTIONS)
    # The row-making code too: a change there (the phones' decoding) makes other rows from the same params.
    stamp = {"sources": hashlib.sha256(sources.read_bytes()).hexdigest(), "params": used,
             "row_code": code_digest()}
    if stages != STAGES:
        stamp["stages"] = list(stages)
    paths = Paths.at(Path(root))
    if rows is not None:
        stamp["rows"] = json.loads((rows.root / STAMP).read_text())
        paths = paths.moved(shards=rows.shards, videos=rows.videos)
    stamp_file = paths.root / STAMP
    kept = (stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp
            and getattr(paths, MADE[stages[-1]]).exists())
    if kept:
        print(f"corpus: {paths.root} is built from these sources and params; kept", file=sys.stderr)
    else:
        shutil.rmtree(paths.root, ignore_errors=True)
        paths.root.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    if not kept:
        extra = ["--shards", str(rows.shards.resolve())] if rows is not None else []
        with Progress("corpus", units={"build": "stages"}) as progress:
            for done, module in enumerate(stages):
                progress("build", done, len(stages))
                _stage(module, paths.root.resolve(), *extra, *override_options(settings))
            progress("build", len(stages), len(stages))
        stamp_file.write_text(json.dumps(stamp))
    return paths


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help=__doc__.split("\n\n")[0])


@cli.command()
def build(
    sources: Annotated[Path, typer.Argument(help="one URL or local video path per line")],
    root: Annotated[Path, typer.Option(help="the project folder the corpus is built in")],
    override: Overrides = None,
) -> None:
    """Build a corpus from SOURCES into its own project folder (--root); the workspace is never written.
    Stopped (Ctrl-C, SIGTERM, SIGHUP), it ends the stage it runs and leaves --root as far as it got."""
    try:
        with stop_on_signals():
            paths = build_corpus(root, sources, parse_overrides(override))
    except Stopped as stopped:
        typer.echo(f"corpus: {stopped}; {root} is left as far as it got, the workspace as it was", err=True)
        raise
    typer.echo(json.dumps({"root": str(paths.root), "lstm": str(paths.lstm), "cgan": str(paths.cgan)}))


@cli.command()
def base(
    work: Annotated[Path, typer.Option(help="where the base corpus is built and kept")] = BASE_WORK,
) -> None:
    """Rebuild the shipped real-faces base (models/base/) from the real fixtures beside the project."""
    from flows.base import build_base

    with stop_on_signals():
        typer.echo(f"base: {build_base(work)}")


@cli.command("base-lstm")
def base_lstm(
    work: Annotated[Path, typer.Option(help="where its frame table and run are kept")] = BASE_LSTM_WORK,
) -> None:
    """Retrain the shipped LSTM alone (models/base/lstm.pt and its model card section), the generator kept."""
    from flows.base import build_base_lstm

    with stop_on_signals():
        typer.echo(f"base-lstm: {build_base_lstm(work)}")


if __name__ == "__main__":
    cli()
