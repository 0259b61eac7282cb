"""Sharing the dataset through a DVC remote: push from one clone, pull into another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def sh(cwd: Path, *args: str) -> str:
    # The copies have no .venv of their own: bin/python takes the active one, as after
    # `source .venv/bin/activate`.
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def frame_table(shards: Path) -> pd.DataFrame:
    table = pd.read_parquet(shards)
    table["video_id"] = table["video_id"].astype(str)
    return table.sort_values(["video_id", "frame"]).reset_index(drop=True)


def test_shards_travel_through_a_local_remote(tmp_path):
    repo = tmp_path / "team"
    for name in ("dvc.yaml", "params.yaml", "bin", "flows", "tasks", "data/sources", ".dvc/config",
                 ".dvcignore", ".gitignore"):
        src = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = (repo / "params.yaml").read_text()
    small = params.replace("clips: 6", "clips: 2").replace("seconds: 10.0", "seconds: 2.0")
    (repo / "params.yaml").write_text(small)
    git = ("git", "-c", "user.name=reenact", "-c", "user.email=reenact@localhost")
    sh(repo, "git", "init", "-q")
    sh(repo, str(BIN / "dvc"), "repro", "preprocess")

    remote = tmp_path / "remote"
    sh(repo, str(BIN / "dvc"), "remote", "add", "-d", "shared", str(remote))
    sh(repo, str(BIN / "dvc"), "push")
    sh(repo, "git", "add", "-A")
    sh(repo, *git, "commit", "-qm", "dataset")

    clone = tmp_path / "colleague"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "data" / "shards").exists()
    # The team ran the pipeline as far as the dataset: pull what that stage made.
    pulled = sh(clone, str(BIN / "dvc"), "pull", "--with-deps", "preprocess")
    assert "data/shards" in pulled

    ours, theirs = frame_table(repo / "data" / "shards"), frame_table(clone / "data" / "shards")
    assert len(ours) == 120
    pd.testing.assert_frame_equal(ours, theirs)
    assert sh(clone, str(BIN / "dvc"), "status", "preprocess").strip().endswith("up to date.")
