"""Loading what rendering and evaluation need, once: the LSTM and the generator with their artifacts,
the target whose face speaks (`resolve_target`, the one place a target is resolved), and the command
line of the stages that use them (evaluate, render)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifacts import CganArtifact, LstmArtifact
from models.common import pick_device
from models.errors import RenderError
from models.networks.cgan import load_generator
from models.networks.lstm import AudioToLips, load_lstm
from models.records import LipsStats
from models.rendering.target import TargetRows, read_target_rows
from models.training.lips import closed_lips, expected_closed_lips, lips_moments
from models.training.targets import Adapted, read_target
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
from tasks.config.files import safe_id
from tasks.config.params import Params
from tasks.config.paths import TARGET_RECORD, Paths


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


@dataclass(frozen=True)
class Target:
    """Whose face speaks, resolved once by `resolve_target`: its name (the video id of its rows), the
    models a render of it runs with, the project as it sees it (an adapted target's own generator, rows
    and footage), its rows (None when it has none: `no_rows` says why), its lip statistics and the
    closed lips its silence gate closes to; `adapted`, the record of a target made by `reenact adapt`."""

    name: str
    models: Models
    paths: Paths
    rows: TargetRows | None
    stats: LipsStats
    closed: np.ndarray
    adapted: Adapted | None = None
    no_rows: str = ""

    def needs_rows(self, why: str) -> TargetRows:
        """Its rows, or RenderError saying there are none and what needed them."""
        if self.rows is None:
            raise RenderError(f"{self.no_rows} ({why} needs them)" if why else self.no_rows)
        return self.rows


def resolve_target(paths: Paths, params: Params, name: str | None = None, models: Models | None = None,
                   *, adapted_targets: bool = True) -> Target:
    """The one way every entry point (CLI, app, deployment, DVC stage, benchmarks) finds a target:
    `name`, else render.target_video, else the generator's own target. A target adapted by `reenact adapt`
    (paths.target_dir(name) with its record) brings its own generator, rows and footage (Paths.in_target)
    and the LSTM it was adapted with (the project's, for one adapted before targets carried theirs);
    any other name is a video of the project's frame table, rendered with `models` when given (already
    loaded project models), else the project's. RenderError when it is neither. `adapted_targets=False`:
    a video of the frame table only (evaluate measures the corpus models on their own target)."""
    wanted = name or params.render.target_video or None
    if wanted and safe_id(wanted) != wanted:  # it names a folder: no path, at most 64 characters
        raise RenderError(f"target {wanted[:80]!r}: not a target name (letters, digits, _ and -, "
                          "at most 64)")
    adapted = None
    if adapted_targets and wanted and (paths.target_dir(wanted) / TARGET_RECORD).is_file():
        adapted = read_target(paths, wanted)
        lstm = adapted.paths.lstm if adapted.paths.lstm.is_file() else paths.lstm
        paths = adapted.paths
        models = load_models(lstm, paths.cgan, params.device)
    elif models is None:
        models = load_models(paths.lstm, paths.cgan, params.device)
    wanted = wanted or models.cgan_artifact.target_video
    artifact = models.cgan_artifact
    rows, no_rows = None, ""
    try:
        rows = read_target_rows(paths.shards, wanted, faces=artifact.condition == "frame")
    except RenderError as exc:
        no_rows = str(exc)
    stats = target_stats(artifact, wanted, rows)
    closed = target_closed(rows, stats, artifact.lip_indices)
    return Target(wanted, models, paths, rows, stats, closed, adapted, no_rows)


def target_stats(artifact: CganArtifact, target: str, rows: TargetRows | None) -> LipsStats:
    """The target's lip statistics: the generator's record of them, else its rows' (a video the
    generator was not trained on can still be a target)."""
    if target in artifact.lips_stats:
        return artifact.lips_stats[target]
    lips = rows.lips[~np.isnan(rows.lips).any(1)] if rows is not None else np.empty((0, 0))
    if len(lips) < 2:
        raise RenderError(
            f"target {target!r}: not an adapted target, nor a video the generator knows "
            f"({', '.join(sorted(artifact.lips_stats))}) or with frames with a face in the frame table"
        )
    return lips_moments(lips)


def target_closed(rows: TargetRows | None, stats: LipsStats, lip_indices: list[int]) -> np.ndarray:
    """The target's closed lips, where the silence gate closes its mouth: from its rows (lips.closed_lips),
    else, with none to read, expected from its lip statistics (lips.expected_closed_lips)."""
    lips = rows.lips[rows.face_found] if rows is not None else np.empty((0, 0))
    return closed_lips(lips, lip_indices) if len(lips) >= 2 else expected_closed_lips(stats, lip_indices)


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
