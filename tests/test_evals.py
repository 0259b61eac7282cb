"""evals/ and benchmarks/ as ARCHITECTURE.md lays them out: each evaluation and figure maker stops in one
line without the real fixtures; none writes, by default, into what DVC tracks (so a `dvc repro` after one
has nothing to do); the fixtures' folder is spelled once (tasks/config/paths.py) and no module edits
the import path (they run as `python -m`)."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tasks.config.paths

ROOT = Path(__file__).resolve().parents[1]
EVALS = ["evals.realface", "evals.speech", "evals.speech_tries", "evals.visemes", "evals.figures.real_people",
         "evals.figures.speech_panel", "evals.figures.real_voice", "evals.figures.watermark"]
BENCHMARKS = ["benchmarks.preprocess", "benchmarks.render", "benchmarks.speech_features", "benchmarks.train",
              "benchmarks.watermark", "benchmarks.whisper_windows"]
# the options (and the module constant WORK) that name where a script writes
OUTPUT_OPTIONS = {"work", "sheets", "renders", "out", "keep"}
CODE = ["benchmarks", "evals", "flows", "models", "tasks", "tests"]


@pytest.mark.parametrize("name", EVALS)
def test_without_the_real_fixtures_each_stops_in_one_line(name, monkeypatch, tmp_path):
    module = importlib.import_module(name)
    monkeypatch.setattr(tasks.config.paths, "REAL_FIXTURES", tmp_path / "none")
    with pytest.raises(SystemExit) as stop:
        module.main([])
    message = str(stop.value.code)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'none'}: no real fixtures here")
    assert "$REENACT_FIXTURES" in message


def test_from_the_command_line_it_is_one_line_not_a_traceback(tmp_path):
    env = {**os.environ, "REENACT_FIXTURES": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-m", "evals.figures.watermark"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no real fixtures here" in done.stderr


def dvc_outputs() -> list[Path]:
    """What DVC tracks in the workspace: every stage's outs, metrics and plots (a foreach stage's: the
    folder its item's name goes in) and the top folder of each (data/, artifacts/, reports/, ...) but
    renders/, which also holds renders made by hand; params.yaml and dvc.lock."""
    found = [ROOT / "params.yaml", ROOT / "dvc.lock"]
    for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        spec = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in spec.get(kind, []):
                name = Path((entry if isinstance(entry, str) else next(iter(entry))).split("${")[0])
                found += [ROOT / name] + ([ROOT / name.parts[0]] if name.parts[0] != "renders" else [])
    return found


def default_outputs(name: str) -> list[Path]:
    module = importlib.import_module(name)
    found = [module.WORK] if hasattr(module, "WORK") else []
    for action in module.parser()._actions:
        if action.dest in OUTPUT_OPTIONS and isinstance(action.default, Path):
            found.append(action.default)
    return found


def test_the_dvc_outputs_are_read_from_dvc_yaml():
    outputs = dvc_outputs()
    for expected in ("data/raw", "data/shards", "artifacts/cgan.pt", "dvclive/lstm/metrics.json", "reports",
                     "renders/demo.mp4", "targets", "params.yaml"):
        assert ROOT / expected in outputs
    assert ROOT / "renders" not in outputs


@pytest.mark.parametrize("name", EVALS + ["benchmarks.watermark", "benchmarks.whisper_windows"])
def test_no_default_output_is_tracked_by_dvc(name):
    outputs = dvc_outputs()
    written = default_outputs(name)
    if name.startswith("evals."):
        assert written, f"{name} names no default output"
    for path in written:
        path = path.resolve()
        for tracked in outputs:
            inside = path == tracked or tracked in path.parents or path in tracked.parents
            assert not inside, f"{name} writes {path} by default, where DVC tracks {tracked}"


@pytest.mark.parametrize("name", EVALS + BENCHMARKS)
def test_each_runs_as_a_module_with_help(name):
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0


def python_files() -> list[Path]:
    return [path for folder in CODE for path in sorted((ROOT / folder).rglob("*.py"))]


def test_the_fixtures_folder_is_spelled_once():
    spelled = re.compile("shared" + r"""["'/ ,]{1,8}""" + "fixtures")
    found = [path.relative_to(ROOT).as_posix() for path in python_files() if spelled.search(path.read_text())]
    assert found == ["tasks/config/paths.py"]


def test_no_module_edits_the_import_path():
    edits = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"):
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert edits == []
