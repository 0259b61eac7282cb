"""dvc.yaml's cache is honest only if each stage lists the code it runs: every project module that the
stage's `python -m MODULE` imports, directly or through others, lazily inside functions too, must be
among its deps (a file, or a folder above it). Otherwise `dvc repro` keeps an output made by code
that has since changed. (`${...}` deps, the data a stage is given, are left out of the check.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.config.imports import import_closure

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_the_closure_follows_lazy_imports():
    found = {p.relative_to(ROOT).as_posix() for p in import_closure("models.rendering.render")}
    assert {"models/rendering/mark.py", "tasks/provenance/watermark.py", "tasks/config/params.py"} <= found
    assert "flows/app.py" not in found


def entry_and_deps(stage: str) -> tuple[str, list[Path]]:
    """The module a stage runs and its deps. `adapt@N` (foreach) runs `flows.cli adapt`, whose work is
    models.training.adapt's: that module's closure is what the stage must list."""
    spec = STAGES[stage].get("do", STAGES[stage])
    command = spec["cmd"].split()
    module = command[command.index("-m") + 1]
    if module == "flows.cli":
        module = f"models.training.{command[command.index('-m') + 2]}"
    return module, [ROOT / dep for dep in spec["deps"] if "$" not in dep]


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stage_lists_the_code_it_runs(stage):
    module, deps = entry_and_deps(stage)
    missing = sorted(
        path.relative_to(ROOT).as_posix()
        for path in import_closure(module)
        if path.stat().st_size and not any(path == dep or dep in path.parents for dep in deps)
    )
    assert missing == [], f"dvc.yaml stage {stage} runs code it does not list in deps: {missing}"
