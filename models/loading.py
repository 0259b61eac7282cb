"""Loading what rendering and evaluation need, once: the LSTM and the generator with their artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.artifacts import CganArtifact, LstmArtifact
from models.cgan import load_generator
from models.common import pick_device
from models.errors import RenderError
from models.lstm import AudioToLips, load_lstm


@dataclass
class Models:
    """The LSTM and the generator in eval mode, with their artifacts and the files they came from
    (hashed into a render's provenance manifest)."""

    lstm: AudioToLips
    lstm_artifact: LstmArtifact
    generator: torch.nn.Module
    cgan_artifact: CganArtifact
    device: torch.device
    lstm_path: Path
    cgan_path: Path


def load_models(lstm_path: str | Path, cgan_path: str | Path, device: str = "auto") -> Models:
    """Both networks in eval mode on `device` ("auto": CUDA when present), from the files a project's
    `Paths` name (`paths.lstm`, `paths.cgan`). FileNotFoundError if absent, CheckpointError if
    unreadable, RenderError when the two were trained on different lip points."""
    device = pick_device(device)
    lstm, lstm_artifact = load_lstm(lstm_path, device)
    generator, cgan_artifact = load_generator(cgan_path, device)
    # NHWC activations: oneDNN's transposed convolutions run ~1.5x faster on CPU, and the faces come
    # out in the (T, H, W, 3) layout ffmpeg wants without a copy.
    generator = generator.to(memory_format=torch.channels_last)
    if lstm_artifact.lip_indices != cgan_artifact.lip_indices:
        raise RenderError(f"{lstm_path} and {cgan_path} were trained on different lip points")
    return Models(lstm, lstm_artifact, generator, cgan_artifact, device, Path(lstm_path), Path(cgan_path))
