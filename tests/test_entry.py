"""One way in: every `python -m` stage parses its arguments through tasks/entry.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.entry import DEFAULT_PARAMS, DEFAULT_SHARDS, Overrides, ParamsFile, Shards, run, stage_params

ROOT = Path(__file__).resolve().parents[1]


def stage(params_file: ParamsFile = DEFAULT_PARAMS, override: Overrides = None,
          shards: Shards = DEFAULT_SHARDS) -> dict:
    """A stage that reports what it was given."""
    params = stage_params(params_file, override)
    return {"seed": params.seed, "epochs": params.lstm.epochs, "shards": shards}


def test_run_parses_the_shared_options_and_returns_the_result(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    argv = ["--params", str(tmp_path / "params.yaml"), "--override", "lstm.epochs=2", "--shards", "x"]
    assert run(stage, argv) == {"seed": 3, "epochs": 2, "shards": Path("x")}


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
    assert "python -m some.stage" in out and "--override" in out and "--shards" in out
    with pytest.raises(SystemExit) as exit_info:
        run(stage, ["--no-such-option"])
    assert exit_info.value.code == 2


STAGES = ["models.train_lstm", "models.train_cgan", "flows.ingest", "flows.preprocess", "flows.pipeline"]


@pytest.mark.parametrize("module", STAGES)
def test_every_stage_has_help(module):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"python -m {module}" in done.stdout
