"""The render test kit: tiny trained models over synthetic shards with a synthetic voice, shared by
every test that renders (a session fixture, registered in conftest.py, so it is built once).

The models are artifacts/*.pt when both exist; otherwise (a fresh clone, or REENACT_TINY_MODELS=1)
tiny ones trained here by the real training entry points on synthetic shards whose audio column
holds real features of a synthetic voice that opens as the mouth does, so that loudness drives
the lips as it does in speech.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from helpers import params_copy, synthetic_shards, train_tiny

from models.render import load_models
from tasks.features import audio_features
from tasks.landmarks import lips_opening
from tasks.shards import part_files

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


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


def _speech_audio(shards: Path, videos: int, params) -> None:
    """Replace the synthetic audio column by real features of a voice as loud as the mouth is open."""
    for index in range(videos):
        for path in part_files(shards, f"synthetic_{index}"):
            table = pq.read_table(path)
            lips = np.asarray(table.column("lips").to_pylist(), np.float32).reshape(-1, 16)
            opening = np.nan_to_num(lips_opening(lips, params.lip_indices))
            envelope = np.clip(opening / max(opening.max(), 1e-6), 0, 1) ** 1.5
            samples = voice(len(lips) / params.fps, envelope=envelope, seed=index)
            features = audio_features(samples, SR, table.column("time").to_numpy(), params)
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(features.reshape(-1), pa.float32()), features.shape[1]
            )
            table = table.set_column(table.schema.get_field_index("audio"), "audio", column)
            pq.write_table(table, path)


@dataclass
class Kit:
    models: object
    params: object
    params_file: Path
    overrides: dict
    shards: Path
    videos: Path
    root: Path
    lstm_path: Path
    cgan_path: Path


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """Models, params (CPU, 128 px output), synthetic shards with their 'raw videos', and a scratch dir."""
    root = tmp_path_factory.mktemp("render")
    # The face crop: these shards are drawings with no footage behind them (tests/test_fullframe.py
    # renders onto real frames).
    overrides = {"device": "cpu", "render.size": 128, "render.output": "face"}
    params_file, params = params_copy(root, overrides)
    shards = synthetic_shards(root / "shards", videos=3, frames=120)
    _speech_audio(shards, 3, params.preprocess)
    videos = root / "raw" / "videos"
    videos.mkdir(parents=True)
    for index in range(3):
        soundfile.write(root / f"voice_{index}.wav", voice(4.0, seed=10 + index), SR)
        ffmpeg("-i", str(root / f"voice_{index}.wav"), "-c:a", "aac", str(videos / f"synthetic_{index}.mp4"))

    lstm_path, cgan_path = ROOT / "artifacts" / "lstm.pt", ROOT / "artifacts" / "cgan.pt"
    if os.environ.get("REENACT_TINY_MODELS") == "1" or not (lstm_path.exists() and cgan_path.exists()):
        lstm_path, cgan_path = train_tiny(
            params_file,
            shards,
            root,
            [
                "lstm.epochs=12",
                "lstm.hidden=16",
                "lstm.fc_hidden=16",
                "lstm.context=2",
                "lstm.batch_size=32",
                "lstm.lr=0.003",
            ],
            [
                "cgan.epochs=1",
                "cgan.finetune_epochs=0",
                "cgan.ngf=4",
                "cgan.ndf=4",
                "cgan.batch_size=16",
                "cgan.val_frames=8",
            ],
        )
    models = load_models(lstm_path, cgan_path, "cpu")
    return Kit(models, params, params_file, overrides, shards, videos, root, lstm_path, cgan_path)
