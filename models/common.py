"""What the model stages share: device and seeding, run keys, DDP."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import random
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

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
    """What a checkpoint must match to be resumed: the params that shape it, the data it saw and the
    code that trains it (`code_digest`)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_digest(*modules: str) -> str:
    """A digest of the source files of `modules` (dotted names): a training stage puts its loop's and its
    networks' in its run key, so that after a change to them DVC's rerun trains anew instead of resuming
    the checkpoint the old code finished."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode())
        with open(importlib.import_module(name).__file__, "rb") as source:
            digest.update(source.read())
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
