"""What every flow shares: the project it works in, params with run-time overrides, the command line
of a flow run as a DVC stage, and publishing Prefect artifacts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from prefect import Flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.config.entry import (
    DEFAULT_ROOT,
    Overrides,
    ParamsFile,
    Root,
    parse_overrides,
    program_name,
    run,
    stage_params,
    stage_paths,
)
from tasks.config.params import Params
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths


def flow_project(root: str | Path, params_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None, **given: str | Path | None) -> tuple[Paths, Params]:
    """Where a flow run works and what it runs with: the project layout under `root` with the given
    locations in place (tasks/config/paths.py), and `params_file` (None: the project's) with `overrides`."""
    paths = Paths.at(root, **given)
    return paths, load_params(params_file or paths.params, overrides)


def record_params(flow_name: str, params: Params, overrides: dict[str, Any] | None,
                  sections: set[str], params_file: str | Path | None = None) -> None:
    """Log and publish the params a run used, so a deployment run with overrides is reproducible: the
    overrides it was given, and where its params file (None: the project's) sets these sections otherwise
    than the project's own params.yaml, or, being that file, than its committed version (`dvc exp run
    -S` rewrites it; `params_changes`)."""
    used = yaml.safe_dump(params.model_dump(mode="json", include=sections), sort_keys=False)
    changed = params_changes(Path(params_file) if params_file else PROJECT_ROOT / "params.yaml", sections)
    said = f"overrides: {overrides or 'none'}" + (f"; {changed}" if changed else "")
    get_run_logger().info("params used (%s):\n%s", said, used)
    markdown = f"# params used\n\n{said}\n\n```yaml\n{used}```"
    publish_markdown(f"{flow_name}-params", markdown, f"the params this {flow_name} run used")


def params_changes(params_file: Path, sections: set[str]) -> str:
    """`params.yaml differs from ... in: data.source=sources, ...` within `sections`, against the project's
    params.yaml when `params_file` is another file, else against the project's committed params.yaml (git's
    HEAD); "" when they agree or there is nothing to compare with (no git, no commit, a bad file)."""
    project = PROJECT_ROOT / "params.yaml"
    try:
        mine = load_params(params_file).model_dump(mode="json", include=sections)
        if params_file.resolve() != project.resolve():
            against, theirs = str(project), load_params(project).model_dump(mode="json", include=sections)
        else:
            committed = subprocess.run(["git", "-C", str(PROJECT_ROOT), "show", "HEAD:params.yaml"],
                                       capture_output=True, text=True, timeout=10, check=True).stdout
            against = "the committed params.yaml"
            theirs = Params.model_validate(yaml.safe_load(committed) or {}).model_dump(mode="json",
                                                                                        include=sections)
    except (OSError, ValueError, subprocess.SubprocessError):
        return ""
    differ = {key: value for key, value in _flat(mine).items() if _flat(theirs).get(key) != value}
    if not differ:
        return ""
    return f"{params_file} differs from {against} in: " + ", ".join(f"{k}={v}" for k, v in differ.items())


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'data': {'limit': 3}} -> {'data.limit': 3}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_stage(stage: Flow, preflight: Callable[[Params, Paths], str | None] | None = None,
              argv: list[str] | None = None) -> None:
    """A flow as a DVC stage: `python -m flows.<stage> [--root DIR] [--params FILE] [--override
    KEY=VALUE ...]`, parsed as every stage is (tasks/config/entry.py); the flow gets `root` and `params_file`.
    What stops a stage for a known reason stops it with one line, before Prefect starts (a flow that
    raises logs a traceback): a bad params.yaml, naming the key, or the problem `preflight` finds in
    the params and the project's paths (e.g. a sources file that is not there)."""

    def command(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None,
                override: Overrides = None) -> None:
        paths = stage_paths(root, params=params_file)
        params = stage_params(paths.params, override)
        problem = preflight(params, paths) if preflight else None
        if problem:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(1)
        stage(root=str(root), params_file=str(paths.params), overrides=parse_overrides(override) or None)

    command.__doc__ = stage.description
    run(command, argv, prog=program_name(stage.fn))


def count_statuses(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {status: sum(row["status"] == status for row in rows) for status in ("ok", "skipped", "failed")}


def failures_markdown(rows: list[dict[str, Any]], name: str, column: str) -> list[str]:
    """Markdown lines of a table of the failed rows and their errors (none when nothing failed)."""
    failures = [row for row in rows if row["status"] == "failed"]
    if not failures:
        return []
    lines = ["", "## Failures", "", f"| {name} | error |", "| --- | --- |"]
    return lines + [f"| {row[column]} | {str(row['error']).replace('|', '/')} |" for row in failures]


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    clean = [{k: ("" if v is None else v) for k, v in row.items()} for row in rows]
    create_table_artifact(key=artifact_key(key), table=clean, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)
