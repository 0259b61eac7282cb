"""Loading what rendering and evaluation need, once: the LSTM and the generator with their checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.cgan import load_generator
from models.common import pick_device
from models.errors import RenderError
from models.lstm import load_lstm


@dataclass
class Models:
    """The LSTM and the generator in eval mode, with their checkpoint dicts and files (hashed into a
    render's provenance manifest)."""

    lstm: torch.nn.Module
    lstm_ckpt: dict
    generator: torch.nn.Module
    cgan_ckpt: dict
    device: torch.device
    lstm_path: Path
    cgan_path: Path


def load_models(
    lstm_path: str | Path = "artifacts/lstm.pt",
    cgan_path: str | Path = "artifacts/cgan.pt",
    device: str = "auto",
) -> Models:
    """Both networks in eval mode on `device` ("auto": CUDA when present). FileNotFoundError if absent."""
    device = pick_device(device)
    lstm, lstm_ckpt = load_lstm(lstm_path, device)
    generator, cgan_ckpt = load_generator(cgan_path, device)
    # NHWC activations: oneDNN's transposed convolutions run ~1.5x faster on CPU, and the faces come
    # out in the (T, H, W, 3) layout ffmpeg wants without a copy.
    generator = generator.to(memory_format=torch.channels_last)
    if list(lstm_ckpt["lip_indices"]) != list(cgan_ckpt["lip_indices"]):
        raise RenderError(f"{lstm_path} and {cgan_path} were trained on different lip points")
    return Models(lstm, lstm_ckpt, generator, cgan_ckpt, device, Path(lstm_path), Path(cgan_path))
