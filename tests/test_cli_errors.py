"""The `reenact` command line on broken inputs: one line naming the file, exit status 1, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from helpers import ROOT, reenact
from render_kit import write_voice

from tasks.config.paths import Paths


def one_line_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def speech(tmp_path) -> Path:
    return write_voice(tmp_path / "speech.wav", 1.0)


def truncated(path: Path) -> Path:
    torch.save({"hparams": {}, "state_dict": {"w": torch.zeros(4096)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def render_cli(tmp_path: Path, speech: Path, *options: str) -> subprocess.CompletedProcess:
    """`reenact render` of `speech` into tmp_path/talk.mp4, run in tmp_path as a user would."""
    return reenact(
        "render", "--audio", str(speech), "--out", str(tmp_path / "talk.mp4"), *options, cwd=tmp_path
    )


def garbage(path: Path) -> Path:
    path.write_bytes(b"these are not the weights you are looking for\n" * 20)
    return path


@pytest.mark.parametrize("make", [truncated, garbage])
def test_render_with_a_corrupt_checkpoint_says_so_in_one_line(tmp_path, speech, make):
    bad = make(tmp_path / "lstm.pt")
    done = render_cli(
        tmp_path, speech, "--lstm", str(bad), "--cgan", str(bad), "--params", str(ROOT / "params.yaml")
    )
    one_line_error(done, str(bad), "not a readable checkpoint")
    assert not (tmp_path / "talk.mp4").exists()


def test_render_with_a_missing_params_file_says_so_in_one_line(tmp_path, speech):
    done = render_cli(tmp_path, speech, "--params", str(tmp_path / "nowhere.yaml"))
    one_line_error(done, "nowhere.yaml", "no such params file")
    # every location follows --root: here its params.yaml, which is not there either
    project = Paths.at(tmp_path / "project")
    one_line_error(render_cli(tmp_path, speech, "--root", str(project.root)), str(project.params))


def test_inspect_a_missing_or_corrupt_shard_folder_says_so_in_one_line(tmp_path):
    one_line_error(
        reenact("inspect", str(tmp_path / "nowhere"), cwd=tmp_path),
        str(tmp_path / "nowhere"),
        "no such folder",
    )
    project = Paths.at(tmp_path / "project")
    one_line_error(reenact("inspect", "--root", str(project.root), cwd=tmp_path), str(project.shards))
    part = tmp_path / "shards" / "video_id=a" / "part-0000.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"PAR1 cut short by a full disk")
    one_line_error(reenact("inspect", str(tmp_path / "shards"), cwd=tmp_path), str(part), "Parquet")
