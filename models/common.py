"""What the model stages share: device and seeding, run keys, DDP, metrics written as JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tasks.config.imports import import_closure
from tasks.config.params_loader import ParamsError
from tasks.config.paths import PROJECT_ROOT

# Offline platform: never phone home (ARCHITECTURE.md, rules). DVCLive imports DVC.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def pick_device(name: str) -> torch.device:
    """params.device: 'auto' takes CUDA when present; a CUDA device this machine lacks is a ParamsError
    (one line), not torch's traceback from deep in the first model moved there."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):  # "cuda" or "cuda:N" (tasks/config/params.py checks the form)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(name.partition(":")[2] or 0) >= count:
            here = f"{count} CUDA device(s) here" if count else "no CUDA device here"
            raise ParamsError(f"device {name}: {here}; use auto or cpu")
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


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined metric (a constant's r, no face found) is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def run_key(*parts: Any) -> str:
    """What a checkpoint must match to be resumed: the params that shape it, the data it saw and the
    code that trains it (`code_digest`)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_digest(module: str, root: Path = PROJECT_ROOT) -> str:
    """A digest of the source of `module` (dotted) and of every project module it imports, directly or
    through others, lazily too (tasks/config/imports.py: import_closure), as the files under `root` stand
    now: a training stage puts its entry module's in its run key, so that after a change to any code the
    stage runs, DVC's rerun trains anew instead of resuming the checkpoint the old code finished."""
    files = import_closure(module, root)
    if not files:
        raise ValueError(f"{module}: no such module under {root}")
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda file: file.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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
