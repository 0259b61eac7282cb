"""The key a video's shard is made under: when it matches (and the source bytes do), the shard is current.

    key = hash(FORMAT_VERSION, the preprocess params that shape rows, the code that makes rows)

The code is the source text of `tasks.ingest.video` (the per-video loop) and of every module of this
package it imports, directly or through another (found by reading their `import` statements:
tasks/config/imports.py), so a change to any of them, or a new module they start to use, makes a new key
without a version for anyone to bump. NOT_ROW_CODE is left out: `tasks.config.params` decides what reaches
the rows as values, which the params digest holds; `tasks.config.paths` and `tasks.table.tables` name files
and write the status tables; `tasks.config.imports` reads source. Runner settings (workers, task runner,
Dask address) are not in it either.
The same key is written into every part file and is what training's corpus fingerprint reads.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from tasks.config.imports import import_closure
from tasks.config.params import PreprocessParams, rows_digest

FORMAT_VERSION = 1
PACKAGE = "tasks"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The per-video loop that writes a video's rows: above the frame table's writer (tasks/table/shards.py),
# which is row-making code too.
ROWS_ENTRY = "ingest.video"
# Imported by row-making modules, but making no row: the params (their values are in the params
# digest), the layout's names, the status tables and the import reader.
NOT_ROW_CODE = frozenset({"config.params", "config.paths", "table.tables", "config.imports"})


def row_code_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of the modules that make rows, sorted: ROWS_ENTRY and what it imports of the
    package at `package_dir` (empty files, such as a subpackage's __init__.py, hold no code)."""
    package_dir = Path(package_dir)
    skip = frozenset(f"{PACKAGE}.{name}" for name in NOT_ROW_CODE)
    found = import_closure(f"{PACKAGE}.{ROWS_ENTRY}", package_dir.parent, skip)
    return sorted(path for path in found if package_dir in path.parents and path.stat().st_size)


def code_digest(package_dir: Path | None = None) -> str:
    """A hash of the row-making modules' names and source text: of the code this process runs
    (read once), or of the package at `package_dir` as it is now."""
    return _running_code_digest() if package_dir is None else _digest_files(row_code_files(Path(package_dir)))


@functools.cache
def _running_code_digest() -> str:
    return _digest_files(row_code_files(PACKAGE_DIR))


def _digest_files(paths: list[Path]) -> str:
    hasher = hashlib.sha256()
    for path in paths:
        name = "/".join(path.parts[-2:]) if path.parent.name != PACKAGE else path.name
        hasher.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:16]


def cache_key(params: PreprocessParams) -> str:
    """What a shard must have been made under to be current (with the same source bytes)."""
    text = json.dumps([FORMAT_VERSION, rows_digest(params), code_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
