"""`reenact adapt`'s training: a copy of the corpus generator (paths.cgan) trained on one more video,
with the corpus run's datasets and steps (models/training/gan.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.artifacts import CganArtifact
from models.common import Process, pick_device, seed_everything
from models.networks.cgan import GENERATORS
from models.networks.unet import UNetGenerator, reference_bank
from models.training.data import Corpus, Video, load_video
from models.training.gan import Gan, batches, dataset, train_epoch
from models.training.lips import lips_moments
from tasks.config.params import Params
from tasks.config.paths import Paths
from tasks.table.shards import video_metadata


def finetune(
    paths: Paths, params: Params, video_id: str, out: Path, *, frames: slice | None = None,
    seconds: float | None = None, progress: Callable[[int, int], None] | None = None, ema: float = 0.0,
) -> CganArtifact:
    """The corpus generator (paths.cgan, left as it is) trained on one video alone: the rows of partition
    `video_id` of paths.shards with a face (only `frames` of them when given, e.g. the first 75%), for
    cgan.finetune_epochs epochs or until `seconds` of wall time, calling `progress(step, total)` after
    each step. Its condition, hparams and lips z-scoring are the corpus generator's (the discriminator
    starts afresh; the optimisers follow params.cgan); its target_video is `video_id`, its lips_stats
    hold that video's and, for the frame generator, its references that video's reference crops (all
    of the frames trained on). `ema` > 0: the weights kept are the exponential moving average of the
    generator's over the steps, with that decay (Polyak averaging, torch.optim.swa_utils), not the
    last step's. Written to `out` (atomically) and returned."""
    seed_everything(params.seed)  # before a grown generator's new level is drawn
    base = CganArtifact.load(paths.cgan)
    video, rows, base = _finetune_rows(paths, base, video_id, frames)
    p, device = params.cgan, pick_device(params.device)
    corpus = Corpus([video], video_metadata(paths.shards, video_id))
    references = dict(base.references)
    if base.condition == "frame":
        references[video_id] = reference_bank(video.lips, rows, video.faces, base.lip_indices, p.references,
                                                     video.landmarks)
    data = dataset(corpus, {video_id: rows}, base.lips_mean, base.lips_std, references, p, base.condition)
    netG = base.network(GENERATORS[base.condition], paths.cgan, device)
    use_amp = p.amp and device.type == "cuda"
    gan = Gan.around(netG, base.condition, p, device, use_amp, torch.contiguous_format)
    single = Process(device, 0, 1)
    total = p.finetune_epochs * len(batches(data, 0, p, single, params.seed))
    deadline = time.perf_counter() + (seconds if seconds is not None else math.inf)
    done = {"steps": 0, "epochs": 0}
    average = None  # the weights' moving average, when `ema` asks for one
    if ema:
        average = AveragedModel(gan.netG, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)

    def after_step() -> bool:
        done["steps"] += 1
        if average is not None:
            average.update_parameters(gan.netG)
        if progress is not None:
            progress(done["steps"], total)
        return time.perf_counter() >= deadline

    for epoch in range(p.finetune_epochs):
        train_epoch(gan, batches(data, epoch, p, single, params.seed), p, after_step)
        done["epochs"] += 1
        if time.perf_counter() >= deadline:
            break
    kept = gan.netG if average is None else average.module
    artifact = replace(
        base,
        state_dict={name: value.detach().cpu() for name, value in kept.state_dict().items()},
        lips_stats={**base.lips_stats, video_id: lips_moments(video.lips[rows])},
        target_video=video_id,
        references=references,
        warps_references=base.condition == "frame" and p.warp_references,
        epoch=base.epoch + done["epochs"],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    artifact.save(out)
    return artifact


def _finetune_rows(paths: Paths, base: CganArtifact, video_id: str,
                   frames: slice | None) -> tuple[Video, np.ndarray, CganArtifact]:
    """The video to fine-tune on, which of its rows (those of `frames` with a face), and the generator to
    start from: `base`, or, for a frame generator and crops bigger than its own, `base` grown to their
    size (`grown`)."""
    video = load_video(paths.shards, video_id, faces=True)
    meta = video_metadata(paths.shards, video_id)
    size = int(meta["face_size"])
    if base.condition == "frame" and size > base.face_size:
        base = grown(base, size)
    if [int(i) for i in meta["lip_indices"]] != base.lip_indices or size != base.face_size:
        raise ValueError(f"{video_id}: made with other lip points or crop size than {paths.cgan}")
    rows = np.zeros(len(video), bool)
    rows[frames if frames is not None else slice(None)] = True
    rows &= video.face_found
    if not rows.any():
        raise ValueError(f"{video_id}: no frame with a face to fine-tune on")
    return video, rows, base


def grown(base: CganArtifact, size: int) -> CganArtifact:
    """The frame generator `base` made to paint `size` px crops (UNetGenerator.grown): its U-Net runs as
    trained at its own size and one new full-size level adds detail; the lips' statistics are kept
    (lips are in crop fractions) and the other videos' reference crops, at the old size, dropped."""
    hparams, weights = UNetGenerator.grown(base.hparams, base.state_dict, size)
    return replace(base, hparams=hparams, state_dict=weights, face_size=size, references={})
