"""The key a video's shard is made under: when it matches (and the source bytes do), the shard is current.

    key = hash(FORMAT_VERSION, the preprocess params that shape rows, the code that makes rows)

The code is the source text of `tasks.rows.video` and of every module of this package it imports,
directly or through another (found by reading their `import` statements), so a change to any
of them, or a new module they start to use, makes a new key without a version for anyone to
bump. NOT_ROW_CODE is left out: `tasks.config.params` decides what reaches the rows as values, which the
params digest holds; `tasks.config.paths` and `tasks.table.tables` name files and write the status tables.
Runner settings (workers, task runner, Dask address) are not in it either.
The same key is written into every part file and is what training's corpus fingerprint reads.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path

from tasks.config.params import PreprocessParams, rows_digest

FORMAT_VERSION = 1
PACKAGE = "tasks"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
ROWS_ENTRY = "rows.video"
# Imported by row-making modules, but making no row: the params (their values are in the params
# digest), the layout's names and the status tables.
NOT_ROW_CODE = frozenset({"config.params", "config.paths", "table.tables"})


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The file of `tasks.<name>` (dotted, without the package) when it is a module of the package."""
    path = package_dir.joinpath(*name.split(".")).with_suffix(".py")
    return path if name and path.is_file() else None


def _imported(path: Path, package_dir: Path) -> set[str]:
    """This package's modules (dotted, without the package) that the module at `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from tasks.rows import landmarks` names a module; `from tasks.rows.align import X` one too.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            head, _, rest = name.partition(".")
            if head == PACKAGE and _module_file(rest, package_dir):
                found.add(rest)
    return found


def row_code_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of the modules that make rows, sorted: ROWS_ENTRY and what it imports."""
    seen, todo = set(), [ROWS_ENTRY]
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_ROW_CODE:
            continue
        seen.add(name)
        todo += sorted(_imported(_module_file(name, package_dir), package_dir))
    return sorted(_module_file(name, package_dir) for name in seen)


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
