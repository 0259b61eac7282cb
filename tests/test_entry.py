"""One way in: every `python -m` stage parses its arguments through tasks/config/entry.py, and every location
follows `--root`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, checkout_env

from tasks.config.entry import (
    DEFAULT_ROOT,
    Overrides,
    ParamsFile,
    Root,
    Shards,
    run,
    stage_params,
    stage_paths,
)
from tasks.config.params import LstmParams
from tasks.config.paths import Paths


def stage(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None, override: Overrides = None,
          shards: Shards = None) -> dict:
    """A stage that reports what it was given."""
    paths = stage_paths(root, params=params_file, shards=shards)
    params = stage_params(paths.params, override)
    return {"seed": params.seed, "epochs": params.lstm.epochs, "shards": paths.shards}


def test_run_parses_the_shared_options_and_returns_the_result(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    argv = ["--params", str(tmp_path / "params.yaml"), "--override", "lstm.epochs=2", "--shards", "x"]
    assert run(stage, argv) == {"seed": 3, "epochs": 2, "shards": Path("x")}


def test_locations_follow_the_root_unless_given(tmp_path):
    project = Paths.at(tmp_path)
    project.params.write_text("seed: 4\n")
    expected = {"seed": 4, "epochs": LstmParams().epochs, "shards": project.shards}
    assert run(stage, ["--root", str(tmp_path)]) == expected
    moved = run(stage, ["--root", str(tmp_path), "--shards", "elsewhere"])
    assert moved["shards"] == Path("elsewhere") and moved["seed"] == 4


def test_bad_params_stop_with_one_line(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("lstm:\n  epochz: 3\n")
    with pytest.raises(SystemExit) as exit_info:
        run(stage, ["--params", str(tmp_path / "params.yaml")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'params.yaml'}: unknown key 'lstm.epochz' (value 3)"]
    with pytest.raises(SystemExit) as exit_info:
        run(stage, ["--override", "seed"])
    assert exit_info.value.code == 1 and "KEY=VALUE" in capsys.readouterr().err


def test_help_and_usage_errors_exit_as_clis_do(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(stage, ["--help"], prog="python -m some.stage")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m some.stage" in out and "--override" in out and "--shards" in out and "--root" in out
    with pytest.raises(SystemExit) as exit_info:
        run(stage, ["--no-such-option"])
    assert exit_info.value.code == 2


def python_m(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=checkout_env(COLUMNS="120"),
                          capture_output=True, text=True, timeout=120, check=False)


STAGES = [
    "models.training.train_lstm",
    "models.training.train_cgan",
    "flows.ingest",
    "flows.preprocess",
    "flows.pipeline",
]


@pytest.mark.parametrize("module", STAGES)
def test_every_stage_has_help(module):
    done = python_m(module, "--help", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"python -m {module}" in done.stdout


@pytest.mark.parametrize("module", ["flows.ingest", "flows.preprocess"])
def test_a_flow_stage_reads_the_params_of_its_root(module, tmp_path):
    """A params.yaml under --root that the stage stops on: it read that one, from anywhere."""
    project = Paths.at(tmp_path / "project")
    project.root.mkdir()
    project.params.write_text("preprocess:\n  fpz: 3\n")
    done = python_m(module, "--root", str(project.root), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {project.params}: unknown key 'preprocess.fpz' (value 3)"
