"""What the model stages share: device and seeding, checkpoints, DDP."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from models.errors import CheckpointError

# Offline platform: never phone home (ARCHITECTURE.md, rules). DVCLive imports DVC.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def pick_device(name: str) -> torch.device:
    """params.device: 'auto' takes CUDA when present."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool):
    """fp16 autocast on CUDA (paired with a GradScaler); a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def run_key(*parts: Any) -> str:
    """What a checkpoint must match to be resumed: the params that shape it and the data it saw."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary name beside `path`, then rename: a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}"
    try:
        torch.save(state, temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """A checkpoint read with weights_only=True (tensors, dicts, lists, numbers, strings), or None
    when there is no file. Raises CheckpointError, naming the file, when it cannot be read."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch reports a bad file as any of a dozen types
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0].split('. ')[0][:160]}" if lines else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


def load_model(cls: type[torch.nn.Module], path: str | Path, stage: str, device: str | torch.device = "cpu"):
    """(model of `cls` in eval mode on `device`, checkpoint dict) from a file written by the `stage` stage."""
    checkpoint = load_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"{path}: no such checkpoint (run `dvc repro {stage}`)")
    model = cls(**checkpoint["hparams"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint


class Process(NamedTuple):
    """This process's place in a (possibly distributed) run."""

    device: torch.device
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes."""
        return self.rank == 0


def init_distributed(device: torch.device) -> Process:
    """Under torchrun, joins the process group (NCCL on CUDA, gloo on CPU) and takes the local
    rank's GPU; otherwise the one process of rank 0 in a world of 1."""
    if "RANK" not in os.environ:
        return Process(device, 0, 1)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(device, dist.get_rank(), dist.get_world_size())


def distributed(model: torch.nn.Module, process: Process) -> torch.nn.Module:
    """`model` wrapped for DDP when there are several processes, else `model` itself. Each rank
    keeps its own batch-norm statistics: broadcasting them on every one of the discriminator's
    three calls per step would overwrite tensors that autograd saved."""
    if process.world == 1:
        return model
    ids = [process.device.index] if process.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
