"""What every flow shares: the project it works in, params with run-time overrides, the command line
of a flow run as a DVC stage, and publishing Prefect artifacts."""

from __future__ import annotations

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
from tasks.config.params import Params, load_params
from tasks.config.paths import Paths


def flow_project(root: str | Path, params_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None, **given: str | Path | None) -> tuple[Paths, Params]:
    """Where a flow run works and what it runs with: the project layout under `root` with the given
    locations in place (tasks/config/paths.py), and `params_file` (None: the project's) with `overrides`."""
    paths = Paths.at(root, **given)
    return paths, load_params(params_file or paths.params, overrides)


def record_params(flow_name: str, params: Params, overrides: dict[str, Any] | None,
                  sections: set[str]) -> None:
    """Log and publish the params a run used, so a deployment run with overrides is reproducible."""
    used = yaml.safe_dump(params.model_dump(mode="json", include=sections), sort_keys=False)
    get_run_logger().info("params used (overrides: %s):\n%s", overrides or "none", used)
    markdown = f"# params used\n\noverrides: `{overrides or {}}`\n\n```yaml\n{used}```"
    publish_markdown(f"{flow_name}-params", markdown, f"the params this {flow_name} run used")


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
