"""Two `reenact adapt` runs of one name at once (models/training/adapt.py): the second is refused in one
line while the first holds the name's lock (tasks/config/files.py: exclusive), and touches nothing of
the first's staging folder; a target folder that lacks a part a render reads is never listed; a time
budget is a finite number of seconds above 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import checkout_env, reenact
from render_kit import ffmpeg

from models.errors import AdaptError
from models.training.adapt import adapt_target
from models.training.targets import list_targets
from tasks.config.files import Busy, exclusive
from tasks.config.params import Params
from tasks.config.params_loader import OverrideError, ParamsError, load_params
from tasks.config.paths import TARGET_RECORD, Paths


def project_options(kit, root) -> list[str]:
    p = kit.paths
    return ["--root", str(root), "--params", str(p.params), "--lstm", str(p.lstm), "--cgan", str(p.cgan),
            "--shards", str(p.shards), "--videos", str(p.videos), "--override", "adapt.base=project"]


def test_a_second_adapt_of_a_name_is_refused_while_the_first_runs(kit, tmp_path):
    clip = tmp_path / "clip.mp4"  # a clip adapt's checks pass: picture, sound, 4 s
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=4", "-f", "lavfi",
           "-i", "sine=frequency=220:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", str(clip))
    paths = Paths.at(tmp_path / "p")
    staging = paths.targets / ".race.0123456789ab.tmp"  # the first run's, half made
    with exclusive(paths.targets / ".race.lock"):  # held as the first run holds it
        (staging / "videos").mkdir(parents=True)
        (staging / "videos" / "race.mp4").write_bytes(b"footage being preprocessed")
        done = reenact("adapt", str(clip), "--name", "race", *project_options(kit, paths.root), cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        said = (f"error: name 'race': another `reenact adapt` of it is running (process {os.getpid()} "
                f"holds {paths.targets / '.race.lock'}); wait for it to end")
        assert done.stderr.strip().splitlines() == [said]
        assert (staging / "videos" / "race.mp4").read_bytes() == b"footage being preprocessed"
        assert not paths.target_dir("race").exists()
    assert sorted(p.name for p in paths.targets.iterdir()) == [staging.name], "the lock file goes with it"


def test_a_lock_whose_holder_was_killed_is_free(tmp_path):
    lock = tmp_path / "targets" / ".me.lock"
    code = (f"import time\nfrom tasks.config.files import exclusive\nwith exclusive({str(lock)!r}):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], env=checkout_env(), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(Busy, match=f"process {holder.pid} holds"), exclusive(lock):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive(lock):  # the kernel dropped the killed holder's lock; its file is taken over
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


def test_only_targets_that_render_are_listed(kit, tmp_path):
    """What the race of the issue registered (cgan.pt and target.json alone) is not a target."""
    paths = Paths.at(tmp_path / "p")
    record = {"name": "race", "source": "/clips/race.mp4", "sha256": "0" * 64, "frames": 60,
              "frames_with_face": 60, "train_frames": 60, "steps": 1, "preprocess_seconds": 1.0,
              "finetune_seconds": 1.0, "adapt_seconds": 2.0, "created": "2025-01-01T00:00:00+00:00"}
    broken = paths.target_dir("race")
    broken.mkdir(parents=True)
    (broken / "cgan.pt").write_bytes(kit.paths.cgan.read_bytes())
    (broken / TARGET_RECORD).write_text(json.dumps(record))
    (paths.targets / "garbled").mkdir()
    (paths.targets / "garbled" / TARGET_RECORD).write_text("{not json")
    assert list_targets(paths) == []
    done = reenact("targets", "--root", str(paths.root), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("no adapted targets"), done.stdout + done.stderr
    again = "`reenact adapt VIDEO --name {} --replace` makes it again"
    assert done.stderr.splitlines() == [
        f"garbled: not listed, it lacks its cgan.pt, shards, footage; {again.format('garbled')}",
        f"race: not listed, it lacks its shards, footage; {again.format('race')}"]


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -5.0, 0.0])
def test_a_time_budget_is_finite_and_above_zero(tmp_path, seconds):
    """(`reenact adapt --seconds nan`, -5, 0: tests/test_cli_walk.py.)"""
    with pytest.raises(AdaptError, match=f"seconds {seconds}: a time budget is a finite number of seconds"):
        adapt_target(tmp_path / "clip.mp4", "me", Paths.at(tmp_path), Params(), seconds=seconds)
    (tmp_path / "params.yaml").write_text("{}\n")
    with pytest.raises(OverrideError, match="bad value for 'adapt.seconds'"):
        load_params(tmp_path / "params.yaml", {"adapt.seconds": seconds})
    (tmp_path / "params.yaml").write_text(f"adapt:\n  seconds: {seconds}\n")
    with pytest.raises(ParamsError, match="bad value for 'adapt.seconds'"):
        load_params(tmp_path / "params.yaml")
