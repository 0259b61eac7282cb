"""The key a video's shard is made under: when it matches (and the source bytes do), the shard is current.

    key = hash(FORMAT_VERSION, the preprocess params that shape rows, the code that makes rows)

The code is the source text of `tasks.video` and of every module of this package it imports,
directly or through another (found by reading their `import` statements), so a change to any
of them, or a new module they start to use, makes a new key without a version for anyone to
bump. NOT_ROW_CODE is left out: `tasks.params` decides what reaches the rows as values, which the
params digest holds; `tasks.paths` and `tasks.tables` name files and write the status tables.
Runner settings (workers, task runner, Dask address) are not in it either.
The same key is written into every part file and is what training's corpus fingerprint reads.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path

from tasks.params import PreprocessParams, rows_digest

FORMAT_VERSION = 1
PACKAGE = "tasks"
PACKAGE_DIR = Path(__file__).resolve().parent
ROWS_ENTRY = "video"
# Imported by row-making modules, but making no row: the params (their values are in the params
# digest), the layout's names and the status tables.
NOT_ROW_CODE = frozenset({"params", "paths", "tables"})


def _imported(path: Path, package_dir: Path) -> set[str]:
    """Names of this package's modules that the module at `path` imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from tasks import landmarks` names modules; `from tasks.align import X` names one.
            names = ([f"{PACKAGE}.{alias.name}" for alias in node.names] if node.module == PACKAGE
                     else [node.module])
        else:
            continue
        for name in names:
            head, _, rest = name.partition(".")
            if head == PACKAGE and rest and (package_dir / f"{rest.split('.')[0]}.py").is_file():
                found.add(rest.split(".")[0])
    return found


def row_code_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of the modules that make rows, sorted: ROWS_ENTRY and what it imports."""
    seen, todo = set(), [ROWS_ENTRY]
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_ROW_CODE:
            continue
        seen.add(name)
        todo += sorted(_imported(package_dir / f"{name}.py", package_dir))
    return sorted(package_dir / f"{name}.py" for name in seen)


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
        hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:16]


def cache_key(params: PreprocessParams) -> str:
    """What a shard must have been made under to be current (with the same source bytes)."""
    text = json.dumps([FORMAT_VERSION, rows_digest(params), code_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
