"""The project's imports, read from its source and never run: which project modules a module imports,
and what those import in turn, wherever the statement stands (at the top of a file, or lazily inside a
function). One walker for everything that asks (ARCHITECTURE.md, Layering and Rules): a training run's
key hashes its stage's closure (models/common.py: code_digest), a shard's key the row-making code's
(tasks/rows/rowkey.py); tests/test_stage_deps.py checks that each dvc.yaml stage lists its closure and
tests/test_layers.py that each import keeps the layer order.

`import a.b` names module a.b; `from a.b import c` names a.b and a.b.c (c is a module of package a.b, or
a name defined in a.b: only a file decides which). A relative import is resolved against the package of
the file it stands in.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tasks.config.paths import PROJECT_ROOT


@dataclass(frozen=True)
class Import:
    """One import statement of a file: its line, its text and the project files it names."""

    line: int
    statement: str
    files: tuple[Path, ...]


def module_file(name: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The file of module `name` (dotted) under `root`; None for a module outside the project, or a name
    defined in a module."""
    if not name:
        return None
    base = Path(root).joinpath(*name.split("."))
    for candidate in (base.parent / f"{base.name}.py", base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _names(node: ast.Import | ast.ImportFrom, package: list[str]) -> list[str]:
    """The dotted modules one statement may name; `package`: the parts of its file's package."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        if node.level - 1 > len(package):
            return []
        base = package[: len(package) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    return [module, *(f"{module}.{alias.name}" if module else alias.name for alias in node.names)]


def imports(path: Path, root: Path = PROJECT_ROOT) -> list[Import]:
    """Every import statement of the file at `path` (under `root`) that names a project file, in the
    order they stand."""
    path, root = Path(path), Path(root)
    package = list(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        files = {file for name in _names(node, package) if (file := module_file(name, root)) is not None}
        if files:
            found.append(Import(node.lineno, ast.unparse(node), tuple(sorted(files))))
    return sorted(found, key=lambda item: item.line)


def import_closure(module: str, root: Path = PROJECT_ROOT, skip: frozenset[str] = frozenset()) -> set[Path]:
    """The files of `module` and of every project module it imports, directly or through others, as the
    source under `root` stands now. The modules of `skip` (dotted) are neither taken nor walked into."""
    root = Path(root)
    skipped = {file for name in skip if (file := module_file(name, root)) is not None}
    start = module_file(module, root)
    seen: set[Path] = set()
    todo = [start] if start is not None else []
    while todo:
        path = todo.pop()
        if path in seen or path in skipped:
            continue
        seen.add(path)
        todo += [file for item in imports(path, root) for file in item.files]
    return seen
