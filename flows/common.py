"""What every flow shares: params with run-time overrides, and publishing Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.params import Params, load_params


def resolve_params(params_file: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """params.yaml with dotted-key overrides applied, validated by the one typed loader."""
    return load_params(params_file, overrides)


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    clean = [{k: ("" if v is None else v) for k, v in row.items()} for row in rows]
    create_table_artifact(key=artifact_key(key), table=clean, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)
