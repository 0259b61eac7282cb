"""The status tables: one row per item of a stage's last run and its outcome, so that a source or a
video that failed is a `failed` row with its error (ARCHITECTURE.md, rules).

    paths.manifest     one row per source   (tasks/ingest/download.py, MANIFEST_SCHEMA)
    paths.videos_table   one row per video    (tasks/table/shards.py, VIDEOS_SCHEMA)

Both are small: read whole, written whole and atomically. The schema is the table's one list of
columns: a row is written with the schema's columns only, and a table written before a column was
added reads with that column null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.config.files import atomic_path


def write_status_table(rows: list[dict[str, Any]], path: str | Path, schema: pa.Schema) -> Path:
    """Replace the table at `path` with `rows`, atomically; a column a row lacks is null, a key the
    schema does not name is left out."""
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path) as temp:
        pq.write_table(table, temp, compression="zstd")
    return Path(path)


def read_status_table(path: str | Path, schema: pa.Schema) -> list[dict[str, Any]]:
    """The rows of the table at `path` as dicts with the schema's columns; none when there is no table."""
    path = Path(path)
    return pq.read_table(path, schema=schema).to_pylist() if path.exists() else []
