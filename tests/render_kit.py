"""Tiny trained projects for every test that renders or evaluates, made by one session-scoped factory
(`tiny_models`, registered in conftest.py): each is trained once a session, whichever test asks first.

A project is a folder of its own laid out as tasks/config/paths.py says: params.yaml (the working tree's,
with the project's overrides written in), a corpus in data/shards and data/raw/videos, and an LSTM
and a generator in artifacts/ trained by the real training stages run in that folder with no
arguments, as `dvc repro` runs them. Nothing else of the working tree is read.

- `kit`: synthetic drawings (tasks/table/synthetic.py) whose audio column holds real features of a
  synthetic voice that opens as the mouth does, so that loudness drives the lips as in speech; its
  raw videos are that voice alone, no picture. It renders the face crop (output "face").
- `footage`: three 2 s demo clips (tasks/demo/corpus.py) preprocessed by the real per-video task: real
  frames to composite into (output "full", "panel").
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import yaml

from models.rendering.render import Models, Target, load_models, resolve_target
from tasks.config.params import DemoParams, Params
from tasks.config.params_loader import load_params
from tasks.config.paths import Paths
from tasks.demo.corpus import make_demo_corpus
from tasks.ingest.video import process_video
from tasks.rows.features import audio_features
from tasks.rows.landmarks import lips_opening
from tasks.table.shards import part_files
from tasks.table.synthetic import synthetic_shards

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
# Small enough to train in seconds on a CPU, and still a generator and an LSTM of the real shape.
TINY = {
    "device": "cpu",
    "lstm.hidden": 16,
    "lstm.fc_hidden": 16,
    "lstm.context": 2,
    "cgan.epochs": 1,
    "cgan.finetune_epochs": 0,
    "cgan.ngf": 4,
    "cgan.ndf": 4,
    "cgan.val_frames": 8,
    # the demo's faces are ~202 px wide, so adapt.face_size auto would paint them at 256 px, ~2x a step;
    # tests/test_adapt.py adapts at 256 and tests auto's choice on its own
    "adapt.face_size": 128,
}

Corpus = Callable[[Paths, Params], None]  # writes the project's shards (and raw videos)


@dataclass(frozen=True)
class Trained:
    """A tiny trained project: where everything is, the params it was made with, its models loaded."""

    paths: Paths
    params: Params
    models: Models

    @property
    def target(self) -> str:
        """The generator's target video: whose face speaks when a render names none."""
        return self.models.cgan_artifact.target_video

    def resolve(self, params: Params | None = None, name: str | None = None,
                paths: Paths | None = None) -> Target:
        """The target a render of this project runs on (resolve_target with the loaded models)."""
        return resolve_target(paths or self.paths, params or self.params, name, self.models)


class TinyModels:
    """`tiny_models(name, corpus, overrides)`: the project `name`, trained on the first call."""

    def __init__(self, folder: Path):
        self.folder, self.made = folder, {}

    def __call__(self, name: str, corpus: Corpus, overrides: dict[str, Any]) -> Trained:
        if name not in self.made:
            self.made[name] = train_project(Paths.at(self.folder / name), corpus, overrides)
        return self.made[name]


def train_project(paths: Paths, corpus: Corpus, overrides: dict[str, Any]) -> Trained:
    """Write params.yaml and the corpus, then run both training stages in the project. Its targets adapt
    from its own models (adapt.base: project), unless the overrides say otherwise."""
    params = load_params(ROOT / "params.yaml", {"adapt.base": "project", **overrides})
    paths.root.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    corpus(paths, params)
    from models.training import train_cgan, train_lstm

    with contextlib.chdir(paths.root):  # every location the stages' default: the project's
        train_lstm.main([])
        train_cgan.main([])
    return Trained(paths, params, load_models(paths.lstm, paths.cgan, params.device))


def voice_corpus(paths: Paths, params: Params, videos: int = 3) -> None:
    """Synthetic shards with a voice in their audio column, and that voice as each raw video."""
    p = params.preprocess
    synthetic_shards(paths.shards, videos=videos, frames=120, params=p)  # its layout: the voice's features
    for index in range(videos):
        for path in part_files(paths.shards, f"synthetic_{index}"):
            table = pq.read_table(path)
            lips = np.asarray(table.column("lips").to_pylist(), np.float32).reshape(-1, 16)
            opening = np.nan_to_num(lips_opening(lips, p.lip_indices))
            envelope = np.clip(opening / max(opening.max(), 1e-6), 0, 1) ** 1.5
            samples = voice(len(lips) / p.fps, envelope=envelope, seed=index)
            features = audio_features(samples, SR, table.column("time").to_numpy(), p)
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(features.reshape(-1), pa.float32()), features.shape[1]
            )
            pq.write_table(table.set_column(table.schema.get_field_index("audio"), "audio", column), path)
    paths.videos.mkdir(parents=True)
    for index in range(videos):
        wav = write_voice(paths.root / f"voice_{index}.wav", 4.0, seed=10 + index)
        ffmpeg("-i", str(wav), "-c:a", "aac", str(paths.videos / f"synthetic_{index}.mp4"))
        wav.unlink()


def demo_corpus(paths: Paths, params: Params) -> None:
    """Three 2 s demo clips as raw videos, preprocessed."""
    for path in make_demo_corpus(paths.videos, DemoParams(clips=3, seconds=2.0, seed=7)):
        assert process_video(path, paths.shards, params.preprocess)["status"] == "ok"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    return TinyModels(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def kit(tiny_models) -> Trained:
    """The face crop at 128 px (these shards are drawings with no footage behind them). Its voice is a
    loudness-shaped tone, not speech: no phones to hear (the paper's 28 features; `footage` has them)."""
    lstm = {"lstm.epochs": 12, "lstm.batch_size": 32, "lstm.lr": 0.003, "cgan.batch_size": 16,
            "preprocess.phones": False, "preprocess.words": False, "preprocess.whisper": False}
    render = {"render.size": 128, "render.output": "face"}
    return tiny_models("voice", voice_corpus, {**TINY, **lstm, **render})


@pytest.fixture(scope="session")
def footage(tiny_models) -> Trained:
    """Full frames of real footage, panels at 128 px a face."""
    return tiny_models("footage", demo_corpus, {**TINY, "lstm.epochs": 2, "render.size": 128})


def random_lstm(models: Models, layout: list[str]) -> Models:
    """`models` with a small untrained LSTM (seed 0) that hears `layout`, its phones in viseme groups:
    what a render and a stream feed an LSTM of another layout, without training one (no linear map)."""
    import dataclasses

    import torch

    from models.networks.lstm import AudioToLips, lstm_heard

    heard = lstm_heard(np.zeros((1, len(layout)), np.float32), layout, "visemes").shape[1]
    artifact = dataclasses.replace(models.lstm_artifact, feature_layout=layout, phone_classes="visemes",
                                   linear=None, audio_mean=np.zeros(heard, np.float32),
                                   audio_std=np.ones(heard, np.float32))
    torch.manual_seed(0)
    lstm = AudioToLips(features=heard, hidden=8, fc_hidden=8).eval()
    return dataclasses.replace(models, lstm=lstm, lstm_artifact=artifact)


def voice(
    seconds: float,
    sample_rate: int = SR,
    seed: int = 0,
    envelope: np.ndarray | None = None,
    fps: float = 30.0,
) -> np.ndarray:
    """A buzzy vowel-like voice whose loudness follows `envelope` (per frame at fps) or random syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    if envelope is None:
        syllables = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 4.5) * t + rng.uniform(0, 6)), 0, None)
        envelope_t = syllables * (np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6)) > -0.5)
    else:
        envelope_t = np.interp(t, np.arange(len(envelope)) / fps, envelope)
    f0 = 130 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    buzz = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.25 * envelope_t * (buzz + 0.3 * rng.normal(size=len(t)))).astype(np.float32)


def write_voice(path: Path, seconds: float, seed: int = 0) -> Path:
    """`voice` as a 16 kHz wav at `path`."""
    soundfile.write(path, voice(seconds, seed=seed), SR)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))
