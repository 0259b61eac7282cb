"""What `reenact adapt` says as it goes and what it records: progress lines when its output is a file, one
warning line for footage outside what works well (models/training/footage.py), --strict refusing it, and
`reenact targets` showing the base, the footage figures and the held-out figures adapt measured."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REAL_MEDIA
from helpers import ROOT, checkout_env, reenact, reenact_command, reenact_here
from render_kit import ffmpeg
from test_adapt import one_line_error, project_options

from models.training.footage import FACE_3D, FACE_POINTS, frame_ranges, head_yaw, sharpness
from models.training.targets import read_target
from tasks.config.paths import TARGET_RECORD, Paths
from tasks.table.shards import decode_crops, read_frames

PROGRESS = re.compile(r"^adapt: (preprocess|fine-tune) (\d+)/(\d+) (frames|steps), [\d:]+ elapsed, "
                      r"([\d:]+|\?) left$", re.MULTILINE)


def landmarks_turned(yaw: float, size: int = 128) -> np.ndarray:
    """68 landmarks (only FACE_POINTS set) of the generic face turned by `yaw` degrees, seen by the camera
    head_yaw assumes, 1000 units away."""
    turn = np.radians(yaw)
    rotation = np.array([[np.cos(turn), 0, np.sin(turn)], [0, 1, 0], [-np.sin(turn), 0, np.cos(turn)]])
    camera = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float64)
    away = np.array([0.0, 0.0, 3000.0])
    points, _ = cv2.projectPoints(FACE_3D @ rotation.T, np.zeros(3), away, camera, None)
    landmarks = np.zeros((68, 2))
    landmarks[FACE_POINTS] = points.reshape(-1, 2) * [1, -1] + [0, size]  # the image's y points down
    return landmarks


def quiet_reenact(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`reenact ARGS` without progress lines however slow the machine: its stderr is its warnings and
    errors alone."""
    return subprocess.run(reenact_command(*args), cwd=cwd, env=checkout_env(REENACT_PROGRESS_SECONDS="3600"),
                          capture_output=True, text=True, timeout=300, check=False)


def test_head_yaw_reads_the_turn_of_the_generic_face_and_blur_lowers_sharpness():
    for yaw in (0.0, 15.0, 30.0, 45.0):
        assert abs(head_yaw(landmarks_turned(yaw)[None], 128)[0] - yaw) < 3.0, yaw
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), (3, 3), 0)
    smeared = cv2.blur(face, (9, 1))  # a head moving sideways in one exposure
    assert sharpness(smeared[None])[0] < 0.3 * sharpness(face[None])[0]
    assert frame_ranges(np.array([3, 4, 5, 9, 40, 41]), gap=5) == "frames 3-9, 40-41"
    assert frame_ranges(np.arange(10) * 20, gap=5, most=2) == "frames 0, 20, ..."


def test_adapt_to_a_file_says_its_progress_and_targets_shows_what_it_recorded(footage, tmp_path):
    """A frontal demo clip adapted with its output to a file (not a terminal): plain progress lines of
    each phase with a fixed total, no footage warning; --hold-out measures its last quarter, which
    `reenact targets` shows beside the base and the footage figures."""
    clip = footage.paths.videos / f"{footage.target}.mp4"
    log = tmp_path / "adapt.log"
    command = reenact_command("adapt", str(clip), "--name", "me", "--seconds", "1", "--hold-out",
                              "--override", "adapt.min_seconds=1", *project_options(footage, tmp_path / "p"))
    env = checkout_env(REENACT_PROGRESS_SECONDS="1")  # a line every second, not 15: this adapt takes a few
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=300, check=False)
    said = log.read_text()
    assert done.returncode == 0, said
    lines = PROGRESS.findall(said)
    assert {phase for phase, *_ in lines} == {"preprocess", "fine-tune"}, said
    for phase in ("preprocess", "fine-tune"):
        assert len({total for name, _, total, *_ in lines if name == phase}) == 1, f"{phase}: a fixed total"
    assert ("preprocess", "60", "60", "frames", "0:00") in lines, said
    assert "warning" not in said, "frontal footage"
    paths = Paths.at(tmp_path / "p")
    target = read_target(paths, "me")
    record = json.loads((target.folder / TARGET_RECORD).read_text())
    assert record["footage"]["face_share"] > 0.9 and record["footage"]["warning"] == ""
    assert record["footage"]["yaw_median_deg"] < 15 and record["train_frames"] == 45
    assert record["held_out"]["mouth_psnr"] > 10 and "baseline_nearest/mouth_psnr" in record["held_out"]
    assert record["base"] == str(footage.paths.cgan.resolve()) and len(record["base_sha256"]) == 64
    listed = reenact("targets", "--root", str(tmp_path / "p"), cwd=tmp_path).stdout
    assert f"base: {footage.paths.cgan.resolve()} (sha256 {record['base_sha256'][:12]}, trained on" in listed
    assert "footage: a face in" in listed and "held-out frames (the last 25%): mouth_psnr" in listed, listed
    assert "(nearest-lips " in listed, listed


@pytest.mark.real_media
def test_a_turned_head_is_one_warning_line_and_strict_refuses_it(tmp_path):
    """vox/00015 (a three-quarter view, 224 px), its first 3 s, adapted from the shipped base: one
    warning line naming the turn and the frames, the figures in target.json; with --strict, one error
    line and nothing registered."""
    source = REAL_MEDIA / "vox" / "00015.mp4"
    if not source.exists():
        pytest.skip(f"{source} absent")
    clip = tmp_path / "turned.mp4"
    ffmpeg("-i", str(source), "-t", "3", "-c", "copy", str(clip))
    project = ["--root", str(tmp_path / "p"), "--params", str(ROOT / "params.yaml"), "--override",
               "adapt.min_seconds=1"]
    done = quiet_reenact("adapt", str(clip), "--name", "turned", "--seconds", "1", *project, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert re.fullmatch(r"warning: footage: head turned > 25° in frames 0-\d+ \(\d+%\); reenact works best "
                        r"on mostly frontal footage", warnings[0]), warnings[0]
    footage = read_target(Paths.at(tmp_path / "p"), "turned").footage
    assert footage["yaw_median_deg"] > 35 and footage["turned_share"] > 0.8, footage
    assert footage["warning"] == warnings[0].removeprefix("warning: ")

    # The same command refusing it: run in this process (its one line is the error alone all the same).
    done = reenact_here("adapt", str(clip), "--name", "strict", "--strict", *project, cwd=tmp_path,
                        REENACT_PROGRESS_SECONDS="3600")
    line = one_line_error(done, str(clip), "head turned > 25° in frames 0-", "--strict refuses it")
    assert "nothing is registered" in line
    assert not Paths.at(tmp_path / "p").target_dir("strict").exists()
    assert [p.name for p in Paths.at(tmp_path / "p").targets.iterdir()] == ["turned"]


def test_sharpness_of_the_demo_crops_is_far_above_the_threshold(footage):
    """The demo footage is sharp: the threshold (adapt.min_sharpness) is below what a real face's crop
    measures (docs/results.md has the real fixtures' figures)."""
    table = read_frames(footage.paths.shards, footage.target, ["face_found", "face"])
    found = np.flatnonzero(table.column("face_found").to_numpy(zero_copy_only=False))
    values = sharpness(decode_crops(table.column("face"), found))
    assert np.median(values) > 2 * footage.params.adapt.min_sharpness
