"""Train lips -> face (models/networks/cgan.py) on the frame table. The DVC stage `train_cgan`:

    python -m models.training.train_cgan [--root .] [--params params.yaml] [--override cgan.epochs=3 ...]
    torchrun --nproc_per_node=N -m models.training.train_cgan     # DDP: NCCL on CUDA, gloo on CPU

The last cgan.finetune_epochs epochs train on cgan.target_video only (paper, 5.2), to hold
that video's face texture and background. Every epoch: loss_d, loss_g and l1_val (generated
vs real validation frames, given their lips) to paths.live_dir("cgan"), a sample grid (real row over
generated row, fixed noise and fixed validation lips) as a DVCLive image, and a resumable
checkpoint in paths.checkpoint_dir("cgan") / last.pt. The generator, its lips stats and the lips stats of
every video (for aligning speakers when rendering) go to paths.cgan (models/artifacts.py:
CganArtifact); each path under --root (tasks/config/paths.py). Only rank 0 logs and saves;
cgan.batch_size is per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from models.artifacts import CganArtifact
from models.common import (
    Process,
    autocast,
    distributed,
    init_distributed,
    pick_device,
    run_key,
    seed_everything,
)
from models.evaluation.metrics import redetected_lmd
from models.networks.cgan import FACE_SIZE, Discriminator, Generator, to_uint8
from models.rendering.lips import lips_moments
from models.training.data import (
    Corpus,
    FacesWithLips,
    Split,
    lips_stats,
    load_corpus,
    load_video,
    split_corpus,
    target_video,
    video_lips_stats,
)
from models.training.run import TrainingRun, epoch_line, made_from
from tasks.config.entry import (
    DEFAULT_ROOT,
    Cgan,
    Overrides,
    ParamsFile,
    Root,
    Shards,
    run,
    stage_params,
    stage_paths,
)
from tasks.config.params import CganParams, Params
from tasks.config.paths import Paths
from tasks.rows.landmarks import landmarks_in_crops
from tasks.table.shards import evenly_spaced, video_metadata

SAMPLES = 8  # columns of the sample grid


@dataclass
class FaceData:
    """The splits as (face, z-scored lips) datasets, and the fixed validation frames every epoch shows."""

    corpus: Corpus
    split: Split
    target: str  # the video the last epochs train on alone
    lips_mean: np.ndarray
    lips_std: np.ndarray
    train: FacesWithLips
    target_train: FacesWithLips
    val: FacesWithLips
    val_real: torch.Tensor | None  # evenly spaced validation faces: the same every epoch and every run
    val_lips: torch.Tensor | None  # their z-scored lips
    samples: np.ndarray  # which of them the sample grid shows


def face_data(shards: Path, params: Params) -> FaceData:
    """Faces stay JPEG until a batch needs them; lips are z-scored with the train split's stats."""
    corpus = load_corpus(shards, faces=True)
    split = split_corpus(corpus, params)
    target = target_video(corpus, params.cgan.target_video)
    lips_mean, lips_std = lips_stats(corpus, split.train)
    val = FacesWithLips(corpus, split.val, lips_mean, lips_std)
    val_index = evenly_spaced(len(val), params.cgan.val_frames)
    return FaceData(
        corpus, split, target, lips_mean, lips_std,
        train=FacesWithLips(corpus, split.train, lips_mean, lips_std),
        target_train=FacesWithLips(corpus, {target: split.train[target]}, lips_mean, lips_std),
        val=val,
        val_real=torch.stack([val[i][0] for i in val_index]) if len(val) else None,
        val_lips=val.lips[val_index] if len(val) else None,
        samples=evenly_spaced(len(val_index), SAMPLES),
    )


def batches(dataset: FacesWithLips, epoch: int, p: CganParams, process: Process, seed: int) -> DataLoader:
    """One epoch's batches; under DDP each process draws its own share of a shuffle common to all."""
    sampler = None
    if process.world > 1:
        sampler = DistributedSampler(dataset, process.world, process.rank, shuffle=True, seed=seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=p.batch_size, shuffle=sampler is None, sampler=sampler,
                      num_workers=p.num_workers, pin_memory=process.device.type == "cuda",
                      drop_last=len(dataset) >= p.batch_size * process.world)


@dataclass
class Gan:
    """What a C-GAN step updates: the generator and the discriminator, their Adam optimisers and the
    GradScaler; and what it runs on: the device, fp16 autocast (CUDA only), the memory format."""

    netG: nn.Module
    netD: nn.Module
    optG: torch.optim.Optimizer
    optD: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    memory_format: torch.memory_format

    @classmethod
    def build(
        cls, p: CganParams, device: torch.device, use_amp: bool, memory_format: torch.memory_format
    ) -> Gan:
        netG = Generator(**Generator.hparams(p)).to(device, memory_format=memory_format)
        netD = Discriminator(ndf=p.ndf).to(device, memory_format=memory_format)
        optG = torch.optim.Adam(netG.parameters(), lr=p.lr_g, betas=(p.beta1, 0.999))
        optD = torch.optim.Adam(netD.parameters(), lr=p.lr_d, betas=(p.beta1, 0.999))
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        return cls(netG, netD, optG, optD, scaler, device, use_amp, memory_format)

    def state(self) -> dict[str, Any]:
        """What the resumable checkpoint keeps, by the keys it keeps them under (models/training/run.py)."""
        return {"netG": self.netG, "netD": self.netD, "optG": self.optG, "optD": self.optD,
                "scaler": self.scaler}

    def distributed(self, process: Process) -> Gan:
        """The same, with both networks wrapped for DDP when there are several processes."""
        return replace(self, netG=distributed(self.netG, process), netD=distributed(self.netD, process))


def gan_step(
    gan: Gan, real: torch.Tensor, lips: torch.Tensor, p: CganParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """One C-GAN training step on a batch of real faces and their z-scored lips: (loss_d, loss_g)."""
    netG, netD, optG, optD, scaler, device, use_amp = (
        gan.netG, gan.netD, gan.optG, gan.optD, gan.scaler, gan.device, gan.use_amp
    )
    z = torch.randn(len(real), p.noise_dim, device=device)

    # (1) Update D network: maximize log(D(x|y)) + log(1 - D(G(z|y)|y))
    with autocast(device, use_amp):
        fake = netG(z, lips)
        logit_real = netD(real, lips)
        logit_fake = netD(fake.detach(), lips)
        loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.full_like(logit_real, p.real_label))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    optD.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(optD)

    # (2) Update G network: maximize log(D(G(z|y)|y)), plus L1 towards the real frame when asked
    with autocast(device, use_amp):
        logit_fake = netD(fake, lips)
        loss_g = F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))
        if p.l1_weight > 0:
            loss_g = loss_g + p.l1_weight * (fake.float() - real).abs().mean()
    optG.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.step(optG)
    scaler.update()
    return loss_d, loss_g


def train_epoch(gan: Gan, loader: DataLoader, p: CganParams) -> dict[str, float]:
    """One pass over `loader`: the mean loss_d and loss_g per step."""
    gan.netG.train()
    gan.netD.train()
    sums, steps = {"loss_d": 0.0, "loss_g": 0.0}, 0
    for real, lips in loader:
        real = real.to(gan.device, non_blocking=True).contiguous(memory_format=gan.memory_format)
        lips = lips.to(gan.device, non_blocking=True)
        loss_d, loss_g = gan_step(gan, real, lips, p)
        sums["loss_d"] += loss_d.item()
        sums["loss_g"] += loss_g.item()
        steps += 1
    return {name: total / max(steps, 1) for name, total in sums.items()}


def generate(generator: Generator, noise: torch.Tensor, lips: torch.Tensor, batch_size: int,
             device: torch.device) -> torch.Tensor:
    """Faces for z-scored lips, all from one noise vector, as float on the CPU."""
    generator.eval()
    return torch.cat([generator(noise.expand(len(y), -1).to(device), y.to(device)).float().cpu()
                      for y in lips.split(batch_size)])


@torch.no_grad()
def validate(generator: Generator, noise: torch.Tensor, data: FaceData, p: CganParams, device: torch.device,
             use_amp: bool, live) -> dict[str, float]:
    """l1_val on the fixed validation frames; the sample grid, real row over generated row, to DVCLive."""
    if data.val_real is None:
        return {}
    with autocast(device, use_amp):
        fakes = generate(generator, noise, data.val_lips, p.batch_size, device)
    real_row = torch.cat(list(data.val_real[data.samples]), 2)
    fake_row = torch.cat(list(fakes[data.samples]), 2)
    grid = to_uint8(torch.cat([real_row, fake_row], 1)[None])[0]
    live.log_image("samples.png", Image.fromarray(grid.numpy()))
    return {"l1_val": (fakes - data.val_real).abs().mean().item()}


@torch.no_grad()
def condition_metrics(generator: Generator, noise: torch.Tensor, data: FaceData,
                      device: torch.device) -> dict:
    """Does the generator obey its condition? dlib is run again on generated validation frames and
    the lips it finds are compared with the lips asked for (gen_lmd_px, pixels of the face crop);
    real_lmd_px is the same measurement on the real frames: dlib's own floor."""
    fakes = generate(generator, noise, data.val_lips, 64, device)
    asked = data.val_lips.numpy() * data.lips_std + data.lips_mean
    lip_indices = list(data.corpus.meta["lip_indices"])

    def distance(images: torch.Tensor) -> tuple[float, float]:
        return redetected_lmd(landmarks_in_crops(to_uint8(images).numpy(), lip_indices), asked, FACE_SIZE)

    gen_px, gen_found = distance(fakes)
    real_px, _ = distance(data.val_real)
    return {"gen_lmd_px": gen_px, "gen_face_found": gen_found, "real_lmd_px": real_px}


def train(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None, override: Overrides = None,
          shards: Shards = None, cgan: Cgan = None) -> None:
    """Train lips -> face (models/networks/cgan.py) on the frame table: the DVC stage train_cgan
    (torchrun: DDP).
    `--cgan`: where the artifact goes."""
    paths = stage_paths(root, shards=shards, cgan=cgan)
    params = stage_params(params_file or paths.params, override)
    p = params.cgan
    process = init_distributed(pick_device(params.device))
    device = process.device
    use_amp = p.amp and device.type == "cuda"
    # channels_last lets cuDNN pick its NHWC (tensor core) kernels; on CPU it buys nothing here.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    seed_everything(params.seed)

    data = face_data(paths.shards, params)
    if process.is_main:
        print(f"cgan: {len(data.train)} train / {len(data.val)} val frames, target {data.target} "
              f"({len(data.target_train)} train frames), {process.world} process(es) on {device}")
    # One noise vector for all samples (and for rendering): only the lips change across the grid.
    noise = torch.randn(p.noise_dim, generator=torch.Generator().manual_seed(params.seed))

    raw = Gan.build(p, device, use_amp, memory_format)
    # Epochs and how the data is fed are left out of the key: a longer or shorter run resumes.
    key = run_key(p.model_dump(exclude={"epochs", "finetune_epochs", "num_workers", "val_frames"}),
                  params.split.model_dump(), params.seed, data.corpus.fingerprint())
    training = TrainingRun("cgan", key, raw.state(), paths, process.is_main)
    gan = raw.distributed(process)

    for epoch in range(training.start_epoch, p.epochs):
        started = time.perf_counter()
        # A seed per epoch and rank: a resumed run draws the same noise as an uninterrupted one.
        torch.manual_seed(params.seed + 1000 * epoch + process.rank)
        finetune = epoch >= p.epochs - p.finetune_epochs
        loader = batches(data.target_train if finetune else data.train, epoch, p, process, params.seed)
        metrics = train_epoch(gan, loader, p)
        if not process.is_main:
            continue
        metrics.update(validate(raw.netG, noise, data, p, device, use_amp, training.live))
        training.log(epoch, metrics)
        training.save(epoch)
        print(epoch_line("cgan", epoch, p.epochs, metrics, started, " (target only)" if finetune else ""))

    if process.is_main:
        if data.val_real is not None:
            obedience = condition_metrics(raw.netG, noise, data, device)
            training.summarise(obedience)
            print("cgan: " + " ".join(f"{k} {v:.4f}" for k, v in obedience.items()))
        training.finish(cgan_artifact(raw.netG, noise, data, p), paths.cgan)
        print(f"cgan: wrote {paths.cgan}")
    if process.world > 1:
        dist.destroy_process_group()


def cgan_artifact(generator: Generator, noise: torch.Tensor, data: FaceData, p: CganParams) -> CganArtifact:
    """The generator and everything needed to use it (models/networks/cgan.py: generate_faces; rendering's
    alignment of one speaker's lips to the target's uses every video's lips stats)."""
    return CganArtifact(
        state_dict=generator.state_dict(),
        hparams=Generator.hparams(p),
        condition="noise",
        noise=noise.numpy(),
        lips_mean=data.lips_mean, lips_std=data.lips_std,
        lips_stats=video_lips_stats(data.corpus),
        target_video=data.target,
        face_size=FACE_SIZE,
        epoch=p.epochs,
        **made_from(p, data.corpus, data.split),
    )


def finetune(
    paths: Paths, params: Params, video_id: str, out: Path, *, frames: slice | None = None,
    seconds: float | None = None, progress: Callable[[int, int], None] | None = None,
) -> CganArtifact:
    """The corpus generator (paths.cgan, left as it is) trained on one video alone: the rows of partition
    `video_id` of paths.shards with a face (only `frames` of them when given, e.g. the first 75%), for
    cgan.finetune_epochs epochs or until `seconds` of wall time, calling `progress(step, total)` after
    each step. Its condition, hparams and lips z-scoring are the corpus generator's; its target_video
    is `video_id` and its lips_stats hold that video's (of the frames trained on). Written to `out`
    (atomically) and returned."""
    base = CganArtifact.load(paths.cgan)
    p, device = params.cgan, pick_device(params.device)
    video = load_video(paths.shards, video_id, faces=True)
    meta = video_metadata(paths.shards, video_id)
    if [int(i) for i in meta["lip_indices"]] != base.lip_indices or int(meta["face_size"]) != base.face_size:
        raise ValueError(f"{video_id}: made with other lip points or crop size than {paths.cgan}")
    rows = np.zeros(len(video), bool)
    rows[frames if frames is not None else slice(None)] = True
    rows &= video.face_found
    if not rows.any():
        raise ValueError(f"{video_id}: no frame with a face to fine-tune on")
    seed_everything(params.seed)
    corpus = Corpus([video], meta)
    dataset = FacesWithLips(corpus, {video_id: rows}, base.lips_mean, base.lips_std)
    gan = Gan.build(p, device, p.amp and device.type == "cuda", torch.contiguous_format)
    gan.netG.load_state_dict(base.state_dict)
    single = Process(device, 0, 1)
    total = p.finetune_epochs * len(batches(dataset, 0, p, single, params.seed))
    deadline = time.perf_counter() + (seconds if seconds is not None else float("inf"))
    step, epoch = 0, 0
    for epoch in range(p.finetune_epochs):
        gan.netG.train()
        gan.netD.train()
        for real, lips in batches(dataset, epoch, p, single, params.seed):
            gan_step(gan, real.to(device), lips.to(device), p)
            step += 1
            if progress is not None:
                progress(step, total)
            if time.perf_counter() >= deadline:
                break
        if time.perf_counter() >= deadline:
            break
    artifact = replace(
        base,
        state_dict={name: value.detach().cpu() for name, value in gan.netG.state_dict().items()},
        lips_stats={**base.lips_stats, video_id: lips_moments(video.lips[rows])},
        target_video=video_id,
        epoch=base.epoch + epoch + (1 if step else 0),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    artifact.save(out)
    return artifact


def main(argv: list[str] | None = None) -> None:
    run(train, argv)


if __name__ == "__main__":
    main()
