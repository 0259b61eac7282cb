"""Train lips -> face (models/cgan.py) on the frame table. The DVC stage `train_cgan`:

    python -m models.train_cgan [--params params.yaml] [--override cgan.epochs=3 ...]
    torchrun --nproc_per_node=N -m models.train_cgan     # DDP: NCCL on CUDA, gloo on CPU

The last cgan.finetune_epochs epochs train on cgan.target_video only (paper, 5.2), to hold
that video's face texture and background. Every epoch: loss_d, loss_g and l1_val (generated
vs real validation frames, given their lips) to dvclive/cgan, a sample grid (real row over
generated row, fixed noise and fixed validation lips) as a DVCLive image, and a resumable
checkpoint in checkpoints/cgan/last.pt. The generator, its lips stats and the lips stats of
every video (for aligning speakers when rendering) go to artifacts/cgan.pt. Only rank 0
logs and saves; cgan.batch_size is per process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from models.cgan import IMAGE_SIZE, Discriminator, Generator
from models.common import (
    autocast,
    init_distributed,
    load_checkpoint,
    pick_device,
    run_key,
    save_checkpoint,
    seed_everything,
    stage_params,
    training_args,
)
from models.data import FacesWithLips, lips_stats, load_corpus, split_corpus, target_video, video_lips_stats
from models.metrics import redetected_lmd
from tasks.landmarks import landmarks_in_crops
from tasks.params import digest

SAMPLES = 8  # columns of the sample grid


def gan_step(netG, netD, optG, optD, scaler, real: torch.Tensor, lips: torch.Tensor, p, device: torch.device,
             use_amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One C-GAN training step on a batch of real faces and their z-scored lips: (loss_d, loss_g)."""
    z = torch.randn(len(real), p.noise_dim, device=device)

    # (1) Update D: maximise log D(x|y) + log(1 - D(G(z|y)|y))
    with autocast(device, use_amp):
        fake = netG(z, lips)
        logit_real = netD(real, lips)
        logit_fake = netD(fake.detach(), lips)
        loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.full_like(logit_real, p.real_label))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    optD.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(optD)

    # (2) Update G: maximise log D(G(z|y)|y), plus L1 towards the real frame when asked
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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((images + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def condition_metrics(generator, noise, val_real, val_lips, lips_mean, lips_std, lip_indices, device) -> dict:
    """Does the generator obey its condition? dlib is run again on generated validation frames and
    the lips it finds are compared with the lips asked for (gen_lmd_px, pixels of the 128 crop);
    real_lmd_px is the same measurement on the real frames: dlib's own floor."""
    generator.eval()
    fakes = torch.cat([generator(noise.expand(len(y), -1).to(device), y.to(device)).float().cpu()
                       for y in val_lips.split(64)])
    asked = val_lips.numpy() * lips_std + lips_mean

    def distance(images: torch.Tensor) -> tuple[float, float]:
        return redetected_lmd(landmarks_in_crops(to_uint8(images), lip_indices), asked, IMAGE_SIZE)

    gen_px, gen_found = distance(fakes)
    real_px, _ = distance(val_real)
    return {"gen_lmd_px": gen_px, "gen_face_found": gen_found, "real_lmd_px": real_px}


def main(argv: list[str] | None = None) -> None:
    args = training_args("cgan", "Train lips -> face.", argv)
    params = stage_params(args)
    p = params.cgan
    device, rank, world = init_distributed(pick_device(params.device))
    is_main = rank == 0
    use_amp = p.amp and device.type == "cuda"
    # channels_last lets cuDNN pick its NHWC (tensor core) kernels; on CPU it buys nothing here.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    seed_everything(params.seed)

    # -- data: faces stay JPEG until a batch needs them
    corpus = load_corpus(args.shards, faces=True)
    if corpus.meta["face_size"] != IMAGE_SIZE:
        raise ValueError(f"the cGAN makes {IMAGE_SIZE}x{IMAGE_SIZE} faces; the shards hold "
                         f"preprocess.face_size {corpus.meta['face_size']}")
    split = split_corpus(corpus, params)
    target = target_video(corpus, p.target_video)
    lips_mean, lips_std = lips_stats(corpus, split.train)
    train_set = FacesWithLips(corpus, split.train, lips_mean, lips_std)
    target_set = FacesWithLips(corpus, {target: split.train[target]}, lips_mean, lips_std)
    val_set = FacesWithLips(corpus, split.val, lips_mean, lips_std)
    if is_main:
        print(f"cgan: {len(train_set)} train / {len(val_set)} val frames, target {target} "
              f"({len(target_set)} train frames), {world} process(es) on {device}")

    def loader(dataset: FacesWithLips, epoch: int) -> DataLoader:
        sampler = None
        if world > 1:
            sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=params.seed, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_size=p.batch_size, shuffle=sampler is None, sampler=sampler,
                          num_workers=p.num_workers, pin_memory=device.type == "cuda",
                          drop_last=len(dataset) >= p.batch_size * world)

    # Fixed validation frames: evenly spaced, the same every epoch and every run.
    val_index = np.unique(np.linspace(0, len(val_set) - 1, min(p.val_frames, len(val_set))).astype(int))
    val_real = torch.stack([val_set[i][0] for i in val_index]) if len(val_set) else None
    val_lips = val_set.lips[val_index] if len(val_set) else None
    sample_index = np.unique(np.linspace(0, len(val_index) - 1, min(SAMPLES, len(val_index))).astype(int))
    # One noise vector for all samples (and for rendering): only the lips change across the grid.
    noise = torch.randn(p.noise_dim, generator=torch.Generator().manual_seed(params.seed))

    # -- models and optimisers, resumed when the checkpoint was made from the same params and data
    hparams = {"noise_dim": p.noise_dim, "lips": 16, "ngf": p.ngf}
    netG = Generator(**hparams).to(device, memory_format=memory_format)
    netD = Discriminator(lips=16, ndf=p.ndf).to(device, memory_format=memory_format)
    optG = torch.optim.Adam(netG.parameters(), lr=p.lr_g, betas=(p.beta1, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=p.lr_d, betas=(p.beta1, 0.999))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    key = run_key(p.model_dump(exclude={"epochs", "finetune_epochs", "num_workers", "val_frames"}),
                  params.split.model_dump(), params.seed, corpus.fingerprint())
    last_path = Path(args.checkpoints) / "last.pt"
    checkpoint = load_checkpoint(last_path)
    start_epoch = 0
    if checkpoint is not None and checkpoint["run_key"] == key:
        netG.load_state_dict(checkpoint["netG"])
        netD.load_state_dict(checkpoint["netD"])
        optG.load_state_dict(checkpoint["optG"])
        optD.load_state_dict(checkpoint["optD"])
        if checkpoint["scaler"]:  # empty when saved by a disabled (CPU) scaler
            scaler.load_state_dict(checkpoint["scaler"])
        start_epoch = checkpoint["epoch"]
        if is_main:
            print(f"cgan: resuming from {last_path} after epoch {start_epoch}")
    elif checkpoint is not None and is_main:
        print(f"cgan: {last_path} was made with other params or data; starting afresh")
    generator, discriminator = netG, netD
    if world > 1:
        # Each rank keeps its own batch-norm statistics: broadcasting them on every one of the
        # three discriminator calls per step would overwrite tensors that autograd saved.
        ids = [device.index] if device.type == "cuda" else None
        netG = DDP(netG, device_ids=ids, broadcast_buffers=False)
        netD = DDP(netD, device_ids=ids, broadcast_buffers=False)

    live = None
    if is_main:
        from dvclive import Live
        live = Live(args.live, resume=start_epoch > 0, report=None, dvcyaml=False, save_dvc_exp=False)

    for epoch in range(start_epoch, p.epochs):
        t0 = time.perf_counter()
        # A seed per epoch and rank: a resumed run draws the same noise as an uninterrupted one.
        torch.manual_seed(params.seed + 1000 * epoch + rank)
        finetune = epoch >= p.epochs - p.finetune_epochs
        netG.train()
        netD.train()
        sums, steps = {"loss_d": 0.0, "loss_g": 0.0}, 0
        for real, lips in loader(target_set if finetune else train_set, epoch):
            real = real.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            lips = lips.to(device, non_blocking=True)
            loss_d, loss_g = gan_step(netG, netD, optG, optD, scaler, real, lips, p, device, use_amp)
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            steps += 1

        if not is_main:
            continue
        metrics = {name: total / max(steps, 1) for name, total in sums.items()}
        if val_real is not None:
            generator.eval()
            with torch.no_grad(), autocast(device, use_amp):
                fakes = torch.cat([generator(noise.expand(len(y), -1).to(device), y.to(device)).float().cpu()
                                   for y in val_lips.split(p.batch_size)])
            metrics["l1_val"] = (fakes - val_real).abs().mean().item()
            grid = torch.cat([torch.cat(list(val_real[sample_index]), 2), torch.cat(list(fakes[sample_index]), 2)], 1)
            image = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            live.log_image("samples.png", Image.fromarray(image))
        live.step = epoch
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
        save_checkpoint({"run_key": key, "epoch": epoch + 1, "netG": generator.state_dict(),
                         "netD": discriminator.state_dict(), "optG": optG.state_dict(), "optD": optD.state_dict(),
                         "scaler": scaler.state_dict()}, last_path)
        print(f"cgan: epoch {epoch + 1}/{p.epochs}{' (target only)' if finetune else ''} "
              + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f" ({time.perf_counter() - t0:.1f}s)")

    if is_main:
        if val_real is not None:
            obedience = condition_metrics(generator, noise, val_real, val_lips, lips_mean, lips_std,
                                          list(corpus.meta["lip_indices"]), device)
            for name, value in obedience.items():
                live.summary[name] = value
            print("cgan: " + " ".join(f"{k} {v:.4f}" for k, v in obedience.items()))
        live.end()
        save_checkpoint({
            "state_dict": {k: v.cpu() for k, v in generator.state_dict().items()},
            "hparams": hparams,
            "noise": noise,
            "lips_mean": torch.from_numpy(lips_mean), "lips_std": torch.from_numpy(lips_std),
            "lips_stats": video_lips_stats(corpus),
            "target_video": target,
            "lip_indices": list(corpus.meta["lip_indices"]),
            "fps": float(corpus.meta["fps"]),
            "face_size": IMAGE_SIZE,
            "epoch": p.epochs,
            "split": {"by": split.by, "val_videos": split.val_videos()},
            "params": p.model_dump(mode="json"),
            "params_digest": digest(p),
            "data_fingerprint": corpus.fingerprint(),
        }, args.out)
        print(f"cgan: wrote {args.out}")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
