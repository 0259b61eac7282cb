"""The small records that travel inside the artifacts (models/artifacts.py) and between training,
rendering and evaluation: a video's lip statistics (`LipsStats`), its reference crops for the frame
generator (`References`), how much of the lips' shape an LSTM is trusted with (`Shape`) and the linear map
whose lips an LSTM's are mixed with (`LinearLips`).

In memory every array is a numpy array: float64 for the lip statistics (the alignment's linear algebra
wants it), float32 for the references' lips; on disk (`to_disk`, `from_disk`) a dict of tensors and
numbers, what an artifact saves them as.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def as_array(value: Any, dtype: type = np.float32) -> np.ndarray:
    """A tensor (as saved) or any array-like -> a numpy array of `dtype`."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype)


@dataclass(eq=False)
class LipsStats:
    """The mean and covariance of a video's lips (LIPS_DIM, in [0, 1] of the crop) over `frames`
    frames with a face: what rendering aligns one speaker's lips to another's with (models/training/lips.py
    builds them: lips_moments, MomentSums, pooled_stats)."""

    mean: np.ndarray  # (LIPS_DIM,) float64
    cov: np.ndarray  # (LIPS_DIM, LIPS_DIM) float64
    frames: int

    def __post_init__(self) -> None:
        self.mean, self.cov = as_array(self.mean, np.float64), as_array(self.cov, np.float64)
        self.frames = int(self.frames)

    def to_disk(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "cov": torch.from_numpy(self.cov.copy()),
                "frames": self.frames}

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> LipsStats:
        return cls(saved["mean"], saved["cov"], saved["frames"])


@dataclass(eq=False)
class References:
    """A video's reference crops for the frame generator (models/networks/unet.py: reference_bank picks the
    frames, pick_references one of them per frame painted): the aligned crops, their lips, their frames."""

    crops: np.ndarray  # (K, S, S, 3) uint8
    lips: np.ndarray  # (K, LIPS_DIM) float32, in [0, 1] of the crop
    frames: np.ndarray  # (K,) int64: which frames of the video they are
    # (K, 68, 2) float32, crop pixels: what warps them (models/networks/reference_warp.py); None in banks
    # saved before they were kept, which are then never warped
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.crops, self.lips = as_array(self.crops, np.uint8), as_array(self.lips)
        self.frames = as_array(self.frames, np.int64)
        if self.landmarks is not None:
            self.landmarks = as_array(self.landmarks).reshape(len(self.frames), -1, 2)

    def to_disk(self) -> dict[str, Any]:
        names = ("crops", "lips", "frames") + (("landmarks",) if self.landmarks is not None else ())
        return {name: torch.from_numpy(np.array(getattr(self, name))) for name in names}

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> References:
        return cls(saved["crops"], saved["lips"], saved["frames"], saved.get("landmarks"))


@dataclass(frozen=True)
class Shape:
    """How much of the lips' shape beside their opening an LSTM is trusted with (LstmArtifact.shape_gain):
    models/training/lips.py's shaped_lips keeps the opening asked for whole and scales the rest of the lips'
    motion by `gain`."""

    gain: float
    lip_indices: tuple[int, ...]



@dataclass(eq=False)
class LinearLips:
    """A linear map to lips of the features an LSTM's artifact hears over its window (2 context + 1 frames),
    every column of the frame table's layout, Whisper's windowed states included (models/networks/lstm.py:
    linear_lips; fitted by models/training/linear.py): `share` of the lips asked for are its."""

    matrix: np.ndarray  # ((2 context + 1) * D, LIPS_DIM) float32, on the features standardised
    mean: np.ndarray  # (D,) float32: the training frames' features, what they are standardised with
    std: np.ndarray
    lips_mean: np.ndarray  # (LIPS_DIM,) float32: the training frames' lips, what the map moves them from
    share: float

    def __post_init__(self) -> None:
        self.matrix, self.mean, self.std = as_array(self.matrix), as_array(self.mean), as_array(self.std)
        self.lips_mean, self.share = as_array(self.lips_mean), float(self.share)

    def to_disk(self) -> dict[str, Any]:
        return {**{name: torch.from_numpy(np.array(getattr(self, name)))
                   for name in ("matrix", "mean", "std", "lips_mean")}, "share": self.share}

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> LinearLips:
        return cls(saved["matrix"], saved["mean"], saved["std"], saved["lips_mean"], saved["share"])
