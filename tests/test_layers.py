"""The layer order of ARCHITECTURE.md (Layering), checked on the source without running any of it: every
import, at the top of a file or lazily inside a function, goes from a module to its own unit or to a lower
one, and no units import each other round in a cycle.

A unit is a subpackage of models/ or tasks/ (models/networks, tasks/rows, ...), the modules at the top of
models/ (artifacts.py, records.py, errors.py, common.py) or of tasks/, or a whole top-level package (flows,
benchmarks, evals). ORDER lists them bottom first; the units of one tier may not import each other, except the
OPEN ones (benchmarks, evals), which may import anything, round no cycle.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import pytest

from tasks.config.imports import imports

ROOT = Path(__file__).resolve().parents[1]
ORDER: list[set[str]] = [
    {"tasks"},
    {"tasks/config"},
    {"tasks/rows"},
    {"tasks/table"},
    {"tasks/ingest", "tasks/demo", "tasks/provenance"},
    {"models"},
    {"models/networks"},
    {"models/training"},
    {"models/rendering"},
    {"models/evaluation"},
    {"flows"},
    {"benchmarks", "evals"},
]
OPEN = {"benchmarks", "evals"}
PACKAGES = ("tasks", "models", "flows", "benchmarks", "evals")
SUBPACKAGED = ("tasks", "models")  # the packages whose subpackages are units of their own
TIER = {unit: tier for tier, units in enumerate(ORDER) for unit in units}
RULE = " < ".join("{" + ", ".join(sorted(units)) + "}" if len(units) > 1 else next(iter(units))
                  for units in ORDER)


def unit_of(path: Path, root: Path = ROOT) -> str:
    """The unit of the file at `path`: models/networks for models/networks/unet.py, models for
    models/artifacts.py, flows for any file under flows/."""
    parts = path.relative_to(root).parts
    if parts[0] in SUBPACKAGED and len(parts) > 2:
        return f"{parts[0]}/{parts[1]}"
    return parts[0] if len(parts) > 1 else path.stem


def layered_files(root: Path = ROOT) -> list[Path]:
    return sorted(path for package in PACKAGES for path in (root / package).rglob("*.py")
                  if "__pycache__" not in path.parts)


def unit_imports(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, `file:line statement`) for every import of one unit by another."""
    found = []
    for path in layered_files(root):
        unit = unit_of(path, root)
        for item in imports(path, root):
            for target in item.files:
                if unit_of(target, root) != unit:
                    where = f"{path.relative_to(root).as_posix()}:{item.line} `{item.statement}`"
                    found.append((unit, unit_of(target, root), where))
    return found


def violations(root: Path = ROOT) -> list[str]:
    """One line per import that breaks the order, naming the file, the import and the rule."""
    found = [f"{path.relative_to(root).as_posix()}: {unit_of(path, root)} is in no tier of ORDER"
             for path in layered_files(root) if unit_of(path, root) not in TIER]
    for unit, target, where in unit_imports(root):
        if unit not in TIER or unit in OPEN:
            continue
        if target not in TIER:
            found.append(f"{where}: {unit} imports {target}, which is in no tier of ORDER")
        elif TIER[target] >= TIER[unit]:
            place = "above" if TIER[target] > TIER[unit] else "beside"
            found.append(f"{where}: {unit} imports {target}, {place} it; a unit imports only itself and the "
                         f"units below it")
    return sorted(set(found))


def cycles(root: Path = ROOT) -> list[list[str]]:
    """The groups of units that import each other round (strongly connected, more than one unit)."""
    graph = defaultdict(set)
    for unit, target, _ in unit_imports(root):
        graph[unit].add(target)
    index, low, stack, groups, counter = {}, {}, [], [], [0]

    def visit(unit: str) -> None:  # Tarjan's algorithm
        index[unit] = low[unit] = counter[0]
        counter[0] += 1
        stack.append(unit)
        for target in sorted(graph[unit]):
            if target not in index:
                visit(target)
                low[unit] = min(low[unit], low[target])
            elif target in stack:
                low[unit] = min(low[unit], index[target])
        if low[unit] == index[unit]:
            group = []
            while not group or group[-1] != unit:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for unit in sorted(graph):
        if unit not in index:
            visit(unit)
    return groups


def cycle_lines(groups: list[list[str]], root: Path = ROOT) -> list[str]:
    """For each cycle, one way round it, an import per step: what to move below both."""
    example = {}
    for unit, target, where in unit_imports(root):
        example.setdefault((unit, target), where)
    lines = []
    for group in groups:  # a strongly connected group: breadth first from its first unit, back to it
        start, back = group[0], None
        way, todo = {start: [start]}, [start]
        while back is None:
            unit = todo.pop(0)
            for target in sorted(t for (u, t) in example if u == unit and t in group):
                if target == start:
                    back = [*way[unit], start]
                    break
                if target not in way:
                    way[target] = [*way[unit], target]
                    todo.append(target)
        steps = "; ".join(example[step] for step in itertools.pairwise(back))
        lines.append(f"{' -> '.join(back)}: {steps}")
    return lines


def test_every_import_keeps_the_layer_order():
    found = violations()
    assert found == [], f"imports against the layer order ({RULE}):\n" + "\n".join(found)


def test_no_units_import_each_other_round():
    found = cycle_lines(cycles())
    assert found == [], "units in a cycle:\n" + "\n".join(found)


def _write(root: Path, name: str, text: str = "") -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


@pytest.fixture
def tree(tmp_path):
    """A small project of three units in order: tasks/rows < models/networks < models/rendering."""
    _write(tmp_path, "tasks/rows/landmarks.py", "POINTS = 68\n")
    _write(tmp_path, "models/networks/unet.py", "from tasks.rows.landmarks import POINTS\n")
    _write(tmp_path, "models/rendering/composite.py", "import models.networks.unet\n")
    return tmp_path


def test_the_check_names_the_file_the_import_and_the_rule(tree):
    assert violations(tree) == [] and cycles(tree) == []
    _write(tree, "models/networks/unet.py", "def mask():\n    from models.rendering.composite import mask\n")
    assert violations(tree) == [
        ("models/networks/unet.py:2 `from models.rendering.composite import mask`: models/networks imports "
         "models/rendering, above it; a unit imports only itself and the units below it")]
    assert cycles(tree) == [["models/networks", "models/rendering"]]
    assert cycle_lines(cycles(tree), tree) == [
        ("models/networks -> models/rendering -> models/networks: models/networks/unet.py:2 `from "
         "models.rendering.composite import mask`; models/rendering/composite.py:1 "
         "`import models.networks.unet`")]


def test_the_check_refuses_units_of_one_tier_and_units_in_no_tier(tree):
    _write(tree, "tasks/demo/warp.py", "from tasks.ingest import download\n")
    _write(tree, "tasks/ingest/download.py")
    _write(tree, "models/extra/thing.py")
    assert violations(tree) == [
        "models/extra/thing.py: models/extra is in no tier of ORDER",
        ("tasks/demo/warp.py:1 `from tasks.ingest import download`: tasks/demo imports tasks/ingest, beside "
         "it; a unit imports only itself and the units below it"),
    ]
    _write(tree, "benchmarks/speech.py", "import evals.speech\nimport flows.cli\n")
    _write(tree, "evals/speech.py", "from benchmarks import speech\n")
    _write(tree, "flows/cli.py")
    assert len(violations(tree)) == 2, "benchmarks and evals may import anything"
    assert cycles(tree) == [["benchmarks", "evals"]], "but not round a cycle"
