"""Loading what rendering and evaluation need, once: the LSTM and the generator with their artifacts;
and the command line of the stages that use them (evaluate, render)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.artifacts import CganArtifact, LstmArtifact
from models.common import pick_device
from models.errors import RenderError
from models.networks.cgan import load_generator
from models.networks.lstm import AudioToLips, load_lstm
from tasks.config.entry import (
    DEFAULT_ROOT,
    Cgan,
    Lstm,
    Overrides,
    ParamsFile,
    Root,
    Shards,
    Videos,
    stage_params,
    stage_paths,
)
from tasks.config.params import Params
from tasks.config.paths import Paths


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


def target_paths(paths: Paths, target: str | None) -> Paths:
    """The project as a render of `target` sees it: for a target adapted by `reenact adapt` (a folder
    paths.target_dir(target)), its own generator, rows and footage (Paths.in_target) beside the
    project's LSTM; for any other target, the project's."""
    if target and paths.target_dir(target).is_dir():
        return paths.in_target(paths.target_dir(target))
    return paths


def load_target_models(paths: Paths, target: str | None, device: str = "auto") -> tuple[Models, Paths]:
    """(the models, the project's Paths) a render of `target` runs with (`target_paths`)."""
    paths = target_paths(paths, target)
    return load_models(paths.lstm, paths.cgan, device), paths


def models_stage(body: Callable[[Paths, Params], Any]) -> Callable[..., Any]:
    """A stage over the trained models with the shared command line (tasks/config/entry.py): `--root`,
    `--params`, `--override` and where the frame table, the videos and both artifacts are, each
    defaulting to the layout under the root. `body(paths, params)` does the work; its module, name
    and docstring are the stage's (`python -m <module>`, its --help)."""

    def stage(
        root: Root = DEFAULT_ROOT,
        params_file: ParamsFile = None,
        override: Overrides = None,
        shards: Shards = None,
        videos: Videos = None,
        lstm: Lstm = None,
        cgan: Cgan = None,
    ) -> Any:
        paths = stage_paths(root, shards=shards, videos=videos, lstm=lstm, cgan=cgan)
        return body(paths, stage_params(params_file or paths.params, override))

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(stage, name, getattr(body, name))
    return stage
