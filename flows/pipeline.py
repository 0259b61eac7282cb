"""The `pipeline` flow: `dvc repro` for the stages it is given, from Prefect.

Params overrides become `dvc exp run -S key=value`, so the run is a DVC experiment that
`dvc exp show` lists; the overrides are first checked by the same typed loader as every
stage. The metrics that DVC reports afterwards are published as Prefect artifacts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger

from flows.common import flow_project, publish_markdown, publish_table
from tasks.config.entry import DEFAULT_ROOT, Root, run


class StageError(RuntimeError):
    """`dvc repro` (or `dvc exp run`) exited with an error."""


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


def _metrics(cwd: Path) -> list[dict[str, Any]]:
    """`dvc metrics show --json` flattened to one row per (file, metric)."""
    shown = _dvc(["metrics", "show", "--json"], cwd)
    if shown.returncode:
        return []
    rows = []
    for files in (json.loads(shown.stdout or "{}") or {}).values():
        for path, content in ((files or {}).get("data") or {}).items():
            flat: dict[str, Any] = {}
            _flatten(content.get("data") or {}, "", flat)
            rows += [{"file": path, "metric": key, "value": value} for key, value in flat.items()]
    return rows


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}/" if prefix or key else "", out)
    else:
        out[prefix.rstrip("/")] = node


@flow(name="pipeline")
def pipeline(stages: list[str] | None = None, overrides: dict[str, Any] | None = None,
             force: bool = False, root: str = ".") -> dict[str, Any]:
    """Run `dvc repro STAGES` (all stages when empty) in the project at `root` and publish the metrics
    it leaves."""
    logger = get_run_logger()
    paths, _params = flow_project(Path(root).resolve(), None, overrides)  # fail fast, naming the bad key
    cwd = paths.root
    targets = list(stages or [])
    if overrides:
        args = ["exp", "run", *[f"-S{key}={json.dumps(value)}" for key, value in overrides.items()], *targets]
    else:
        args = ["repro", *targets]
    if force:
        args.append("--force")
    logger.info("dvc %s (in %s)", " ".join(args), cwd)
    start = time.perf_counter()
    done = _dvc(args, cwd)
    seconds = time.perf_counter() - start
    for line in done.stdout.splitlines():
        if line.strip():
            logger.info("dvc: %s", line)
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        failure = f"# dvc failed\n\n`dvc {' '.join(args)}` exited {done.returncode}:\n\n```\n{tail}\n```"
        publish_markdown("pipeline-summary", failure, "pipeline failure")
        raise StageError(f"dvc {' '.join(args)} exited {done.returncode}: {tail}")
    ran = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage '")]
    metrics = _metrics(cwd)
    publish_table("pipeline-metrics", metrics or [{"file": "", "metric": "(none yet)", "value": ""}],
                  "metrics reported by `dvc metrics show` after the run")
    stages_run = ", ".join(ran) or "none (up to date)"
    lines = ["# Pipeline", f"`dvc {' '.join(args)}` in {seconds:.1f} s; stages run: {stages_run}."]
    if metrics:
        lines += ["", "| file | metric | value |", "| --- | --- | --- |"]
        lines += [f"| {m['file']} | {m['metric']} | {m['value']} |" for m in metrics]
    publish_markdown("pipeline-summary", "\n".join(lines), "stages run and metrics")
    values = {f"{m['file']}:{m['metric']}": m["value"] for m in metrics}
    return {"stages_run": ran, "seconds": seconds, "metrics": values}


Stages = Annotated[list[str] | None, typer.Argument(help="DVC stages (default: all)")]


def main(stages: Stages = None, root: Root = DEFAULT_ROOT) -> None:
    """`dvc repro` for the given stages as a Prefect flow run, its metrics published as artifacts."""
    pipeline(stages=stages, root=str(root))


if __name__ == "__main__":
    run(main)
