"""Audio -> lips: a (bidirectional) LSTM over the window of 2n+1 feature vectors centred on a frame,
then two hidden fully connected layers to the lips of that frame, (x, y) of 8 points (paper, 4.2 and 5.1).

The network works in normalised units: audio features standardised and lips z-scored with
the training set's stats, which travel in the checkpoint. `predict_lips` does the
round trip from raw features to lips in [0, 1] of the crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.common import load_model
from tasks.features import FEATURE_DIM
from tasks.params import LstmParams
from tasks.shards import LIPS_DIM


def window_index(frames: int, context: int) -> np.ndarray:
    """(frames, 2n+1) indices of the window centred on each frame, edge-padded at both ends."""
    offsets = np.arange(-context, context + 1)
    return np.clip(np.arange(frames)[:, None] + offsets, 0, frames - 1)


class AudioToLips(nn.Module):
    def __init__(self, features: int = FEATURE_DIM, hidden: int = 128, layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0, fc_hidden: int = 128,
                 lips: int = LIPS_DIM):
        super().__init__()
        # nn.LSTM applies its dropout between stacked layers only; the head gets its own below.
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        width = hidden * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(width, fc_hidden), nn.ReLU(),
            nn.Linear(fc_hidden, fc_hidden), nn.ReLU(),
            nn.Linear(fc_hidden, lips),
        )

    @staticmethod
    def hparams(params: LstmParams, features: int) -> dict:
        """The constructor's arguments, as saved in a checkpoint."""
        return {"features": features, "hidden": params.hidden, "layers": params.layers,
                "bidirectional": params.bidirectional, "dropout": params.dropout,
                "fc_hidden": params.fc_hidden, "lips": LIPS_DIM}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (B, 2n+1, features), normalised
        out, _ = self.lstm(features)  # (B, 2n+1, hidden * directions)
        centre = out[:, out.size(1) // 2]  # (B, hidden * directions): the frame the window is centred on
        return self.head(self.dropout(centre))  # (B, LIPS_DIM), z-scored lips


def load_lstm(path: str | Path = "artifacts/lstm.pt", device: str | torch.device = "cpu"):
    """(model in eval mode, checkpoint dict) from a file written by models.train_lstm."""
    return load_model(AudioToLips, path, "train_lstm", device)


@torch.no_grad()
def predict_lips(model: AudioToLips, checkpoint: dict, features: np.ndarray,
                 batch_size: int = 1024) -> np.ndarray:
    """(frames, FEATURE_DIM) raw audio features of a clip -> (frames, LIPS_DIM) lips in [0, 1] of the crop."""
    device = next(model.parameters()).device
    features = torch.as_tensor(features, dtype=torch.float32)
    normalised = (features - checkpoint["audio_mean"]) / checkpoint["audio_std"]
    windows = torch.from_numpy(window_index(len(normalised), checkpoint["context"]))
    lips = []
    for index in windows.split(batch_size):
        lips.append(model(normalised[index].to(device)).float().cpu())
    lips = torch.cat(lips) if lips else torch.empty(0, LIPS_DIM)
    return (lips * checkpoint["lips_std"] + checkpoint["lips_mean"]).numpy()
