"""A corpus built into a project folder of its own, and the real-faces base that ships in models/base/.

    python -m flows.corpus build SOURCES --root DIR [--override KEY=VALUE ...]
    python -m flows.corpus base [--work DIR]          # what `dvc repro base` runs

`build` runs the project's own stages (`flows.ingest`, `flows.preprocess`, `models.training.train_lstm`,
`models.training.train_cgan`, `models.evaluation.evaluate`) with `--root DIR`, as `dvc repro` runs them, on
the sources listed in SOURCES, with this project's params.yaml and the overrides written to DIR/params.yaml
and given to each stage as `--override` too, so that each stage's log names them. The workspace (its
params.yaml, data/, artifacts/) is never written: an interrupted build (SIGINT, SIGTERM, SIGHUP) stops its
stage and leaves the workspace as it was, and DIR as far as it got. A DIR whose stamp (the sources, the
params and the overrides) matches and whose models exist is kept. Progress: the stages done of those to
run, a line at least every 15 s (tasks/config/progress.py), beside each stage's own output on stderr.

`base` builds data/sources/base.txt (the real fixtures beside the project whose licences allow the
weights to be shared) into --work (default .cache/base) and copies its LSTM and frame generator,
with a model card, into models/base/ (ARCHITECTURE.md, The shipped base). `reenact adapt` starts
from them (adapt.base: shipped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from flows.stopping import Stopped, stop_on_signals
from models.artifacts import SHIPPED_BASE, CganArtifact
from tasks.config.entry import Overrides, parse_overrides
from tasks.config.files import atomic_path
from tasks.config.params import load_params
from tasks.config.paths import PROJECT_ROOT, Paths, require_real_fixtures
from tasks.config.progress import Progress

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

BASE_SOURCES = PROJECT_ROOT / "data" / "sources" / "base.txt"
BASE_WORK = PROJECT_ROOT / ".cache" / "base"
# The base is a corpus generator (no finetune epochs: it is the start of every adaptation, not one
# person's), trained on every person: the last 20 % of each clip is its validation.
BASE_OVERRIDES: dict[str, Any] = {"cgan.epochs": 4, "cgan.finetune_epochs": 0, "split.by": "time"}


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
    stamp = {"sources": hashlib.sha256(sources.read_bytes()).hexdigest(), "params": used}
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


def fixtures_dir(name: str) -> Path:
    """The fixtures folder a listed clip lies in (the folder above a grid/ or vox/ subfolder)."""
    path = Path(name)
    return path.parents[1] if path.parent.name in ("grid", "vox") else path.parent


def _licences(names: list[str], fixtures: Path) -> dict[str, str]:
    """Each clip's licence as SOURCES.md beside the fixtures gives it (the parenthesis of its row)."""
    rows = (fixtures / "SOURCES.md").read_text().splitlines()
    found = {}
    for name in names:
        path = Path(name)
        # a clip's own row names it in backticks; one in a subfolder (grid/, vox/) is named by a glob
        key = f"`{path.parent.name}/*" if path.parent != fixtures_dir(name) else f"`{path.name}`"
        row = next((r for r in rows if r.startswith("|") and key in r), "")
        licence = re.findall(r"\(([A-Za-z0-9.\-]+)[;)]", row)
        found[name] = licence[0] if licence else "unknown"
    return found


def build_base(work: Path = BASE_WORK, into: Path = SHIPPED_BASE) -> Path:
    """The shipped base rebuilt from the real fixtures: models/base/{lstm.pt, cgan.pt, MODEL_CARD.md}."""
    fixtures = require_real_fixtures()
    listed = [line.strip() for line in BASE_SOURCES.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    licences = _licences(listed, fixtures)
    refused = {name: lic for name, lic in licences.items() if "NC" in lic or lic == "unknown"}
    if refused:
        raise SystemExit(f"{BASE_SOURCES}: licence does not allow sharing weights: {refused}")
    return export_base(build_corpus(work, BASE_SOURCES, BASE_OVERRIDES), licences, into)


def export_base(paths: Paths, licences: dict[str, str], into: Path = SHIPPED_BASE) -> Path:
    """The base corpus at `paths` as the package ships it: its LSTM, its generator without the reference
    crops it keeps of each training video (faces of the footage, which is never shipped; adapt makes the
    target's own), and the model card."""
    generator = CganArtifact.load(paths.cgan)
    with atomic_path(Path(into)) as staging:
        staging.mkdir(parents=True)
        shutil.copy2(paths.lstm, staging / "lstm.pt")
        dataclasses.replace(generator, references={}).save(staging / "cgan.pt")
        (staging / "MODEL_CARD.md").write_text(model_card(paths, licences))
    return Path(into)


CARD = """# The real-faces base (models/base/)

What `reenact adapt` starts from (`adapt.base: shipped`): `lstm.pt` (speech -> 8 lip points, the
paper's BiLSTM) and `cgan.pt` (the frame-conditioned U-Net that paints a lower face from a reference
crop and the lips). Written by `make base` (the frozen DVC stage base, flows/corpus.py) from the real
fixtures beside the project; data/sources/base.txt lists the clips. Do not edit by hand.

## Intended use

A start for fine-tuning on one consenting person's footage (`reenact adapt`), whose renders are signed
and watermarked as synthetic. It is no one's face: it paints the person of the reference crop it is given.

## Data

{clips} clips, {frames} frames at {fps} fps. Every clip's licence allows sharing weights trained on it:
the non-commercial ones are left out, and so are the four clips adaptation is measured on (anchor_20s,
speaker_15s, may_5s, map_5s), so that no measured person is in the base. No footage is shipped: the
generator keeps no reference crops of these clips (`adapt` makes the target's own).

| clip | frames | with a face | licence |
| --- | --- | --- | --- |
{rows}

## Params

The project's params.yaml at build time with {overrides}:

```yaml
{used}```

## Held-out figures

`python -m models.evaluation.evaluate` on the base's own validation frames (the last 20 % of every clip,
never trained on); `baseline_*` are what the evaluation compares against (ARCHITECTURE.md, Evaluation).

| metric | value |
| --- | --- |
{figures}

## Licences

The weights are shared under the licences of the clips above ({licences}); credit goes to the
repositories that published each clip.
"""


def model_card(paths: Paths, licences: dict[str, str]) -> str:
    """MODEL_CARD.md of the base built at `paths`: its data, params, held-out figures and licences."""
    import pyarrow.parquet as pq

    params = load_params(paths.params)
    videos = {row["video_id"]: row for row in pq.read_table(paths.videos_table).to_pylist()}
    rows = []
    for name, licence in licences.items():
        row = videos.get(Path(name).stem, {})
        shown = Path(name).relative_to(fixtures_dir(name)).as_posix()
        rows.append(f"| `{shown}` | {row.get('frames', 0)} | {row.get('frames_with_face', 0)} | {licence} |")
    metrics = json.loads(paths.metrics.read_text())
    figures = [f"| `{key}` | {value:.4g} |" for key, value in sorted(metrics.items())
               if isinstance(value, int | float) and not isinstance(value, bool)]
    used = yaml.safe_dump(params.model_dump(mode="json", include={"preprocess", "lstm", "cgan", "split"}),
                          sort_keys=False)
    return CARD.format(
        clips=len(licences), frames=sum(r.get("frames", 0) for r in videos.values()),
        fps=params.preprocess.fps,
        rows="\n".join(rows), overrides=", ".join(f"`{k}={v}`" for k, v in BASE_OVERRIDES.items()),
        used=used, figures="\n".join(figures), licences=", ".join(sorted(set(licences.values()))),
    )


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
    with stop_on_signals():
        typer.echo(f"base: {build_base(work)}")


if __name__ == "__main__":
    cli()
