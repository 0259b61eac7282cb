"""Audio -> lips: a (bidirectional) LSTM over the window of 2n+1 feature vectors centred on a frame,
then two hidden fully connected layers to the lips of that frame, (x, y) of 8 points (paper, 4.2 and 5.1).

The network works in normalised units: audio features standardised and lips z-scored with
the training set's stats, which travel in the artifact (models/artifacts.py). `predict_lips` does the
round trip from raw features to lips in [0, 1] of the crop. With `lstm.phone_classes: visemes` the LSTM
hears the frame table's 40 phone shares summed into the 12 groups of VISEMES (`heard_features`), which
followed voices it never heard better than the 40 (ARCHITECTURE.md: the tries of evals/speech_tries.py).

An artifact may carry a linear map of every feature over the same window (models/records.py: LinearLips,
`lstm.linear_share`): `predict_lips` then asks for that share of the lips from it, the rest from the LSTM.
Whisper's windowed states (`preprocess.whisper: window`) go to the linear map alone: an LSTM that heard
them followed voices it never heard worse than one without them (ARCHITECTURE.md, Real voices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.artifacts import LstmArtifact
from models.records import LinearLips
from tasks.config.params import LstmParams
from tasks.rows.features import FEATURE_DIM
from tasks.rows.landmarks import LIPS_DIM

# Phones that look alike on the lips, each group one input of an LSTM with phone_classes "visemes"; together
# they are tasks/rows/phones.py's PHONES, each once (tests/test_lstm_inputs.py).
VISEMES = (("SIL",), ("P", "B", "M"), ("F", "V"), ("TH", "DH"), ("AA", "AE", "AH", "AO", "AW", "AY"),
           ("EH", "EY", "ER", "IH", "IY"), ("OW", "OY", "UH", "UW", "W"), ("CH", "JH", "SH", "ZH"),
           ("S", "Z", "T", "D", "N"), ("K", "G", "NG", "HH", "Y"), ("L",), ("R",))


# The prefixes of the layout's phone shares: the phone loop's, then the words' (tasks/rows/features.py)
PHONE_KINDS = ("phone_", "word_")


def heard_features(features: np.ndarray, layout: list[str], phone_classes: str) -> np.ndarray:
    """(frames, D) features in the frame table's `layout` -> what an LSTM with `phone_classes` hears: with
    "visemes", each kind of phone shares (the layout's phone_* columns, the phone loop's; word_*, the words')
    summed into VISEMES' groups, in their place; else (or without phones) the features as they are."""
    if phone_classes != "visemes":
        return features
    column = {name: i for i, name in enumerate(layout)}
    parts, done = [], 0
    for kind in PHONE_KINDS:
        shares = [i for i, name in enumerate(layout) if name.startswith(kind)]
        if not shares:
            continue
        groups = [features[:, [column[f"{kind}{p}"] for p in group]].sum(1) for group in VISEMES]
        parts += [features[:, done : shares[0]], np.stack(groups, 1).astype(features.dtype)]
        done = shares[-1] + 1
    return np.concatenate([*parts, features[:, done:]], 1) if parts else features


# The columns of Whisper's windowed states (tasks/rows/whisper.py: whisper_layout), which the LSTM never hears
LINEAR_ONLY = "whisper_window_"


def lstm_heard(features: np.ndarray, layout: list[str], phone_classes: str) -> np.ndarray:
    """`heard_features` of the layout's columns the LSTM hears (all but LINEAR_ONLY's)."""
    keep = [i for i, name in enumerate(layout) if not name.startswith(LINEAR_ONLY)]
    if len(keep) == len(layout):
        return heard_features(features, layout, phone_classes)
    return heard_features(features[:, keep], [layout[i] for i in keep], phone_classes)


def linear_lips(linear: LinearLips, heard: np.ndarray, context: int) -> np.ndarray:
    """(frames, LIPS_DIM) the linear map's lips for `heard` ((frames, D): heard_features of every column),
    each frame's window of 2 context + 1 frames edge-padded as the LSTM's (`window_index`)."""
    x = ((heard - linear.mean) / linear.std).astype(np.float32)
    lips = np.repeat(linear.lips_mean[None], len(x), 0).astype(np.float32)
    index, width = window_index(len(x), context), x.shape[1]
    for k in range(index.shape[1]):  # the stacked window's k-th frame times its rows of the matrix
        lips += x[index[:, k]] @ linear.matrix[k * width : (k + 1) * width]
    return lips


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
        """The constructor's arguments, as saved in the artifact (`hparams`)."""
        return {"features": features, "hidden": params.hidden, "layers": params.layers,
                "bidirectional": params.bidirectional, "dropout": params.dropout,
                "fc_hidden": params.fc_hidden, "lips": LIPS_DIM}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (B, 2n+1, features), normalised
        out, _ = self.lstm(features)  # (B, 2n+1, hidden * directions)
        centre = out[:, out.size(1) // 2]  # (B, hidden * directions): the frame the window is centred on
        return self.head(self.dropout(centre))  # (B, LIPS_DIM), z-scored lips


def load_lstm(path: str | Path, device: str | torch.device = "cpu") -> tuple[AudioToLips, LstmArtifact]:
    """(model in eval mode on `device`, its artifact) from a file written by models.training.train_lstm."""
    artifact = LstmArtifact.load(path)
    return artifact.network(AudioToLips, path, device), artifact


@torch.no_grad()
def predict_lips(model: AudioToLips, artifact: LstmArtifact, features: np.ndarray,
                 batch_size: int = 1024) -> np.ndarray:
    """(frames, D) raw audio features of a clip, in the artifact's feature layout (D = 28; 68 with phones;
    108 with words too)
    -> (frames, LIPS_DIM) lips in [0, 1] of the crop, `linear.share` of them the artifact's linear map's
    when it has one. ValueError when D is not what the LSTM heard."""
    features = np.asarray(features, np.float32).reshape(len(features), -1)
    expected = len(artifact.feature_layout) or len(artifact.audio_mean)  # older artifacts: no layout
    if features.shape[1] != expected:
        kinds = [k.rstrip("_") for k in PHONE_KINDS if any(n.startswith(k) for n in artifact.feature_layout)]
        heard = f"with {' and '.join(kinds)} shares" if kinds else "without phones"
        raise ValueError(f"the LSTM hears {expected} audio features ({heard}), given "
                         f"{features.shape[1]}: rows made with another preprocess.phones, words, whisper or "
                         "n_mfcc")
    layout, linear = artifact.feature_layout, artifact.linear
    lips = _lstm_lips(model, artifact, lstm_heard(features, layout, artifact.phone_classes), batch_size)
    if linear is None:
        return lips
    heard = heard_features(features, layout, artifact.phone_classes)
    return linear.share * linear_lips(linear, heard, artifact.context) + (1 - linear.share) * lips


def _lstm_lips(model: AudioToLips, artifact: LstmArtifact, features: np.ndarray,
               batch_size: int) -> np.ndarray:
    device = next(model.parameters()).device
    normalised = torch.from_numpy(
        ((features - artifact.audio_mean) / artifact.audio_std).astype(np.float32)
    )
    windows = torch.from_numpy(window_index(len(normalised), artifact.context))
    lips = []
    for index in windows.split(batch_size):
        lips.append(model(normalised[index].to(device)).float().cpu())
    lips = torch.cat(lips).numpy() if lips else np.zeros((0, LIPS_DIM), np.float32)
    return lips * artifact.lips_std + artifact.lips_mean
