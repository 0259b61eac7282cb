"""The training stages end to end on a tiny synthetic corpus: artifacts, metrics, resuming, DDP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import synthetic_shards

from models.artifacts import CganArtifact, Checkpoint, save_checkpoint
from models.common import code_digest
from models.errors import CheckpointError
from models.networks.cgan import Frames, Generator, generate_faces, load_generator
from models.networks.lstm import load_lstm
from models.networks.unet import UNetGenerator, hard_mask
from models.training import train_cgan, train_lstm
from models.training.data import load_video
from models.training.finetune import finetune
from tasks.config.imports import import_closure
from tasks.config.params import PreprocessParams
from tasks.config.params_loader import load_params, parse_override
from tasks.config.paths import Paths
from tasks.table.shards import decode_crops, partition_dir

ROOT = Path(__file__).resolve().parents[1]
TINY_LSTM = ["lstm.hidden=16", "lstm.fc_hidden=16", "lstm.context=2", "lstm.batch_size=32", "lstm.lr=0.003"]
# The lower-face mask: what the U-Net's input masks and compositing blends; train_cgan imports it only
# through other modules.
MASK_MODULE = "models/networks/mask.py"
TINY_CGAN = ["cgan.ngf=4", "cgan.ndf=4", "cgan.batch_size=16", "cgan.num_workers=0", "cgan.val_frames=16"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("shards"), videos=3, frames=80)


@pytest.fixture(scope="module")
def corpus_cgan(tmp_path_factory, shards) -> Path:
    """A tiny frame generator trained one epoch on `shards` in a project of its own (its params.yaml beside
    it), trained once for the tests that fine-tune from it and only read it."""
    root = tmp_path_factory.mktemp("corpus_cgan")
    (root / "params.yaml").write_text("seed: 0\ndevice: cpu\n")
    argv = ["--root", str(root), "--params", str(root / "params.yaml"), "--shards", str(shards),
            "--cgan", str(root / "cgan.pt")]
    for override in (*TINY_CGAN, "cgan.epochs=1", "cgan.finetune_epochs=0"):
        argv += ["--override", override]
    train_cgan.main(argv)
    return root / "cgan.pt"


@pytest.fixture
def stage(tmp_path, shards):
    """Arguments that point a training script at the tiny corpus and at a project root in tmp_path
    (its checkpoints/ and dvclive/), the artifact at tmp_path/<name>.pt."""
    (tmp_path / "params.yaml").write_text("seed: 0\ndevice: cpu\n")

    def args(name: str, *overrides: str) -> list[str]:
        argv = ["--root", str(tmp_path), "--params", str(tmp_path / "params.yaml"), "--shards", str(shards),
                f"--{name}", str(tmp_path / f"{name}.pt")]
        for override in overrides:
            argv += ["--override", override]
        return argv
    return args


def metrics(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "dvclive" / name / "metrics.json").read_text())


def test_train_lstm_writes_a_usable_artifact_and_metrics(tmp_path, stage):
    train_lstm.main(stage("lstm", *TINY_LSTM, "lstm.epochs=8"))
    logged = metrics(tmp_path, "lstm")
    assert {"train_loss", "val_loss", "lmd_px", "mouth_open_r", "baseline_val_loss"} <= logged.keys()
    assert logged["step"] == 7
    assert logged["best_val_loss"] < logged["baseline_val_loss"] / 2
    assert (tmp_path / "dvclive" / "lstm" / "plots" / "metrics" / "val_loss.tsv").exists()

    checkpoint = torch.load(tmp_path / "lstm.pt", weights_only=True)
    assert {"state_dict", "hparams", "audio_mean", "audio_std", "lips_mean", "lips_std", "lip_indices", "fps",
            "context", "params_digest"} <= checkpoint.keys()
    _, artifact = load_lstm(tmp_path / "lstm.pt")
    assert artifact.hparams["hidden"] == 16 and artifact.audio_mean.dtype == np.float32
    # how widely it moves the mouth on speech it knows: what a clip's swing is judged against
    assert artifact.output_stats is not None and artifact.output_stats.frames > 0
    spread = np.trace(np.diag(artifact.lips_std.astype(float) ** 2))
    assert 0 < np.trace(artifact.output_stats.cov) < 4 * spread


def test_train_lstm_resumes_and_extends(tmp_path, stage, capsys):
    train_lstm.main(stage("lstm", *TINY_LSTM, "lstm.epochs=2"))
    assert Checkpoint.load(tmp_path / "checkpoints" / "lstm" / "last.pt").epoch == 2
    capsys.readouterr()
    train_lstm.main(stage("lstm", *TINY_LSTM, "lstm.epochs=4"))
    assert "resuming from" in capsys.readouterr().out
    assert metrics(tmp_path, "lstm")["step"] == 3
    steps = (tmp_path / "dvclive" / "lstm" / "plots" / "metrics" / "val_loss.tsv").read_text().split("\n")[1:]
    assert [line.split("\t")[0] for line in steps if line] == ["0", "1", "2", "3"]

    capsys.readouterr()
    train_lstm.main(stage("lstm", *TINY_LSTM, "lstm.epochs=4", "lstm.hidden=8"))
    assert "starting afresh" in capsys.readouterr().out


def test_a_change_to_any_module_the_stage_imports_trains_anew(tmp_path, stage):
    """The run key holds the code of every project module the stage's entry imports, through others too
    (models/common.py: code_digest). A copy of that code whose lower-face mask is changed (train_cgan
    reaches it only through the data and the U-Net), run as DVC reruns the stage, refuses the checkpoint
    the code as it was finished and trains anew."""
    entry = "models.training.train_cgan"
    argv = stage("cgan", *TINY_CGAN, "cgan.epochs=1", "cgan.finetune_epochs=0")

    def rerun(code: Path) -> str:
        env = {**_env(), "PYTHONPATH": str(code)}
        result = subprocess.run([sys.executable, "-m", entry, *argv], cwd=code, env=env, capture_output=True,
                                text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    assert "cgan: epoch 1/1" in rerun(ROOT)
    code = tmp_path / "code"
    for path in import_closure(entry):  # the stage's code and its packages' __init__.py
        name = path.relative_to(ROOT)
        for file in [name, *(folder / "__init__.py" for folder in name.parents)]:
            if (ROOT / file).is_file():
                (code / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / file, code / file)
    assert code_digest(entry, code) == code_digest(entry), "the same code elsewhere makes the same key"
    mask = code / MASK_MODULE
    mask.write_text(mask.read_text() + "\nJAW_MARGIN = 0.08  # the mask changed\n")
    assert code_digest(entry, code) != code_digest(entry)

    out = rerun(code)
    assert "was made with other params, data or code; starting afresh" in out and "cgan: epoch 1/1" in out


def test_a_checkpoint_of_the_older_layout_still_resumes(tmp_path):
    """A last.pt written before models/artifacts.py: Checkpoint (its state and extras beside the run key
    and epoch) is read as one; a file that is no checkpoint stops the run in one line."""
    from models.training.run import TrainingRun

    paths = Paths.at(tmp_path)
    old = torch.nn.Linear(4, 8)
    last = paths.checkpoint_dir("lstm") / "last.pt"
    save_checkpoint({"run_key": "key", "epoch": 3, "model": old.state_dict(), "best": {"epoch": 2}}, last)
    same = torch.nn.Linear(4, 8)
    resumed = TrainingRun("lstm", "key", {"model": same}, paths, is_main=False)
    assert resumed.start_epoch == 3 and torch.equal(same.weight, old.weight)
    assert resumed.restored("best") == {"epoch": 2} and resumed.restored("rng", "none") == "none"
    save_checkpoint({"epoch": 3}, last)
    with pytest.raises(CheckpointError, match=r"last\.pt: not a training checkpoint \(no 'run_key'\)"):
        TrainingRun("lstm", "key", {"model": same}, paths, is_main=False)


def test_train_cgan_writes_generator_samples_and_metrics(tmp_path, stage):
    train_cgan.main(stage("cgan", *TINY_CGAN, "cgan.epochs=2", "cgan.finetune_epochs=1",
                          "cgan.adversarial_weight=1", "cgan.references=5"))
    logged = metrics(tmp_path, "cgan")
    assert {"loss_d", "loss_g", "l1_val"} <= logged.keys() and logged["step"] == 1
    assert logged["loss_d"] > 0, "the PatchGAN trained beside the generator"
    assert (tmp_path / "dvclive" / "cgan" / "plots" / "images" / "samples.png").exists()

    checkpoint = torch.load(tmp_path / "cgan.pt", weights_only=True)
    assert checkpoint["target_video"] in checkpoint["lips_stats"]
    assert checkpoint["lips_stats"]["synthetic_0"]["cov"].shape == (16, 16)
    generator, artifact = load_generator(tmp_path / "cgan.pt")
    assert isinstance(generator, UNetGenerator) and artifact.condition == "frame" and artifact.noise is None
    assert artifact.hparams["base"] == 4 and artifact.hparams["size"] == artifact.face_size == 128
    assert artifact.lips_stats["synthetic_0"].cov.dtype == np.float64
    # every video's reference crops, spread from a closed to an open mouth, taken from its train frames
    assert set(artifact.references) == {"synthetic_0", "synthetic_1", "synthetic_2"}
    bank = artifact.references[artifact.target_video]
    assert bank.crops.shape == (5, 128, 128, 3) and bank.crops.dtype == np.uint8
    assert bank.lips.shape == (5, 16) and np.isfinite(bank.lips).all()
    opening = bank.lips[:, 15] - bank.lips[:, 13]  # the inner lips (66 below 62)
    assert opening.max() - opening.min() > 0.05


def test_train_cgan_noise_condition_is_the_papers_generator(tmp_path, stage):
    train_cgan.main(stage("cgan", *TINY_CGAN, "cgan.epochs=1", "cgan.finetune_epochs=0",
                          "cgan.condition=noise"))
    assert {"loss_d", "loss_g", "l1_val"} <= metrics(tmp_path, "cgan").keys()
    generator, artifact = load_generator(tmp_path / "cgan.pt")
    assert isinstance(generator, Generator) and artifact.condition == "noise" and artifact.references == {}
    assert artifact.hparams["ngf"] == 4 and artifact.noise.shape == (50,)
    faces = generate_faces(generator, artifact, artifact.lips_stats["synthetic_0"].mean[None].repeat(3, 0))
    assert faces.shape == (3, 128, 128, 3) and faces.dtype == np.uint8


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_killed_cgan_run_resumes_and_finishes(tmp_path, stage):
    argv = stage("cgan", *TINY_CGAN, "cgan.epochs=40", "cgan.finetune_epochs=1")
    last = tmp_path / "checkpoints" / "cgan" / "last.pt"
    process = subprocess.Popen([sys.executable, "-m", "models.training.train_cgan", *argv], cwd=ROOT,
                               env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = Checkpoint.load(last).epoch
    assert 1 <= done < 40, "killed after its first epoch, well before the last"
    assert not (tmp_path / "cgan.pt").exists()

    # the epochs are left out of the checkpoint's key: a shorter run picks up where it stopped
    argv = stage("cgan", *TINY_CGAN, f"cgan.epochs={done + 1}", "cgan.finetune_epochs=1")
    result = subprocess.run([sys.executable, "-m", "models.training.train_cgan", *argv], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming from {last} after epoch {done}" in result.stdout
    assert f"epoch {done + 1}/{done + 1} (target only)" in result.stdout
    assert metrics(tmp_path, "cgan")["step"] == done
    assert torch.load(tmp_path / "cgan.pt", weights_only=True)["epoch"] == done + 1


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside the interpreter")
def test_torchrun_two_processes_with_gloo(tmp_path, stage):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    argv = stage("cgan", *TINY_CGAN, "cgan.epochs=2", "cgan.finetune_epochs=1")
    command = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "models.training.train_cgan", *argv]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert result.stdout.count("cgan: epoch 2/2") == 1, "only rank 0 logs"
    assert torch.load(tmp_path / "cgan.pt", weights_only=True)["epoch"] == 2


def test_finetune_trains_a_copy_on_one_new_video_and_leaves_the_corpus_generator(tmp_path, corpus_cgan):
    corpus_bytes = corpus_cgan.read_bytes()
    new = synthetic_shards(tmp_path / "new", videos=1, frames=40, seed=3)
    partition_dir(new, "synthetic_0").rename(partition_dir(new, "newcomer"))
    paths = Paths.at(tmp_path, shards=new, cgan=corpus_cgan)
    params = load_params(corpus_cgan.parent / "params.yaml", dict(map(parse_override, TINY_CGAN))
                         | {"cgan.finetune_epochs": 2, "cgan.batch_size": 8})
    calls = []
    out = tmp_path / "targets" / "newcomer.pt"
    artifact = finetune(paths, params, "newcomer", out, frames=slice(0, 30),
                        progress=lambda step, total: calls.append((step, total)))

    assert corpus_cgan.read_bytes() == corpus_bytes
    faces = int(np.sum(np.arange(40)[:30] % 25 != 24))  # every 25th synthetic frame has no face
    assert calls == [(step, 2 * (faces // 8)) for step in range(1, 2 * (faces // 8) + 1)]
    _, saved = load_generator(out)
    corpus = CganArtifact.load(corpus_cgan)
    assert saved.target_video == artifact.target_video == "newcomer"
    assert saved.lips_stats["newcomer"].frames == faces
    assert set(saved.lips_stats) == set(corpus.lips_stats) | {"newcomer"}
    assert saved.condition == corpus.condition and saved.hparams == corpus.hparams
    assert np.array_equal(saved.lips_mean, corpus.lips_mean)
    # the frame generator's reference crops of the new video come from the frames it trained on only
    assert set(saved.references) == set(corpus.references) | {"newcomer"}
    assert saved.references["newcomer"].frames.max() < 30
    changed = [name for name, value in saved.state_dict.items()
               if value.is_floating_point() and not torch.equal(value, corpus.state_dict[name])]
    assert changed, "the weights were trained"


def test_finetune_stops_at_its_time_budget(tmp_path, corpus_cgan, shards):
    paths = Paths.at(tmp_path, cgan=corpus_cgan, shards=shards)
    params = load_params(corpus_cgan.parent / "params.yaml", dict(map(parse_override, TINY_CGAN))
                         | {"cgan.epochs": 50, "cgan.finetune_epochs": 50, "cgan.batch_size": 4})
    calls = []
    finetune(paths, params, "synthetic_1", tmp_path / "one.pt", seconds=0.0,
             progress=lambda step, total: calls.append((step, total)))
    assert len(calls) == 1 and calls[0][1] > 1


def test_frame_generator_trains_and_paints_256_px_crops(tmp_path, stage):
    params = PreprocessParams(face_size=256)
    shards = synthetic_shards(tmp_path / "shards256", videos=2, frames=40, params=params)
    argv = stage("cgan", *TINY_CGAN, "cgan.epochs=1", "cgan.finetune_epochs=0", "cgan.references=4")
    argv[argv.index("--shards") + 1] = str(shards)
    train_cgan.main(argv)
    generator, artifact = load_generator(tmp_path / "cgan.pt")
    assert artifact.face_size == artifact.hparams["size"] == generator.size == 256
    assert artifact.references["synthetic_0"].crops.shape == (4, 256, 256, 3)
    video = load_video(shards, "synthetic_0", faces=True)
    crops = decode_crops(video.faces, [3, 4])
    frames = Frames.of(crops, video.landmarks[[3, 4]], video.lips[[3, 4]], artifact.references["synthetic_0"],
                       artifact)
    faces = generate_faces(generator, artifact, video.lips[[3, 4]], frames=frames)
    assert faces.shape == (2, 256, 256, 3)
    outside = hard_mask(video.landmarks[3], 256) == 0
    assert outside.mean() > 0.5 and np.array_equal(faces[0][outside], crops[0][outside])


def test_a_checkpoint_of_a_network_of_another_shape_starts_afresh(tmp_path):
    """Code that changes a network's shape under the same params: the old last.pt is set aside in one
    line, not loaded into the new network (which would stop the stage with a traceback)."""
    from models.training.run import TrainingRun

    paths = Paths.at(tmp_path)
    old = torch.nn.Linear(4, 8)
    run = TrainingRun("cgan", "same-key", {"netG": old}, paths, is_main=False)
    run.save(0)
    wider = torch.nn.Linear(4, 16)
    again = TrainingRun("cgan", "same-key", {"netG": wider}, paths, is_main=False)
    assert again.start_epoch == 0 and again.resumed is None
    same = torch.nn.Linear(4, 8)
    resumed = TrainingRun("cgan", "same-key", {"netG": same}, paths, is_main=False)
    assert resumed.start_epoch == 1 and torch.equal(same.weight, old.weight)
