"""Sharing the dataset through a DVC remote: push from one clone, pull into another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import BIN, dvc_project_copy

from tasks.config.paths import Paths

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
    repo = dvc_project_copy(tmp_path / "team")
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
    assert not Paths.at(clone).shards.exists()
    # The team ran the pipeline as far as the dataset: pull what that stage made.
    pulled = sh(clone, str(BIN / "dvc"), "pull", "--with-deps", "preprocess")
    assert "data/shards" in pulled

    ours, theirs = frame_table(Paths.at(repo).shards), frame_table(Paths.at(clone).shards)
    assert len(ours) == 120
    pd.testing.assert_frame_equal(ours, theirs)
    assert sh(clone, str(BIN / "dvc"), "status", "preprocess").strip().endswith("up to date.")
