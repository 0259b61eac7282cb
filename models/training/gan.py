"""What one generator training step is, for either condition (models/artifacts.py: Condition): the networks,
their optimisers and the scaler (`Gan`), a step on one batch (`step`), an epoch (`train_epoch`) and
the generator's faces for a fixed batch (`fakes`); the condition's dataset over some rows (`dataset`) and an
epoch's batches of it (`batches`). models/training/train_cgan.py runs them, and models/training/finetune.py
on one more video.

A batch is what the condition's dataset yields (models/training/data.py): `noise`, (real face, z-scored
lips) from FacesWithLips; `frame`, (real crop, hard mask, reference crop, z-scored lips, L1 weights) from
FramesWithReferences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from models.artifacts import Condition
from models.common import Process, autocast, distributed
from models.networks.cgan import Discriminator, Generator, generator_hparams
from models.networks.patch import MultiScaleDiscriminator
from models.networks.unet import UNetGenerator, generator_input
from models.networks.unet_losses import discriminator_loss, feature_matching, generator_loss
from models.records import References
from models.training.data import Corpus, FacesWithLips, FramesWithReferences
from tasks.config.params import CganParams

Batch = list[torch.Tensor]
Dataset = FacesWithLips | FramesWithReferences


def dataset(corpus: Corpus, rows: dict[str, np.ndarray], lips_mean: np.ndarray, lips_std: np.ndarray,
            references: dict[str, References], p: CganParams, condition: str) -> Dataset:
    """The rows as the dataset of `condition`'s generator."""
    if condition == "frame":
        return FramesWithReferences(corpus, rows, lips_mean, lips_std, references, p.mouth_weight,
                                    p.warp_references)
    return FacesWithLips(corpus, rows, lips_mean, lips_std)


def batches(dataset: Dataset, epoch: int, p: CganParams, process: Process, seed: int) -> DataLoader:
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
    GradScaler; and what it runs on: the device, fp16 autocast (CUDA only), the memory format; and
    which generator it is (`condition`)."""

    condition: Condition
    netG: nn.Module
    netD: nn.Module
    optG: torch.optim.Optimizer
    optD: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    memory_format: torch.memory_format

    @classmethod
    def build(cls, p: CganParams, face_size: int, device: torch.device, use_amp: bool,
              memory_format: torch.memory_format) -> Gan:
        """cgan.condition's generator, fresh, for crops of `face_size`."""
        network = UNetGenerator if p.condition == "frame" else Generator
        return cls.around(network(**generator_hparams(p, face_size)), p.condition, p, device, use_amp,
                          memory_format)

    @classmethod
    def around(cls, netG: nn.Module, condition: Condition, p: CganParams, device: torch.device,
               use_amp: bool, memory_format: torch.memory_format) -> Gan:
        """A fresh discriminator and optimisers around the generator `netG` of `condition`."""
        netD = (MultiScaleDiscriminator(base=p.ndf, scales=p.discriminator_scales) if condition == "frame"
                else Discriminator(ndf=p.ndf))
        netG = netG.to(device, memory_format=memory_format)
        netD = netD.to(device, memory_format=memory_format)
        optG = torch.optim.Adam(netG.parameters(), lr=p.lr_g, betas=(p.beta1, 0.999))
        optD = torch.optim.Adam(netD.parameters(), lr=p.lr_d, betas=(p.beta1, 0.999))
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        return cls(condition, netG, netD, optG, optD, scaler, device, use_amp, memory_format)

    def state(self) -> dict[str, Any]:
        """What the resumable checkpoint keeps, by the keys it keeps them under (models/training/run.py)."""
        return {"netG": self.netG, "netD": self.netD, "optG": self.optG, "optD": self.optD,
                "scaler": self.scaler}

    def distributed(self, process: Process) -> Gan:
        """The same, with both networks wrapped for DDP when there are several processes."""
        return replace(self, netG=distributed(self.netG, process), netD=distributed(self.netD, process))


def _update(gan: Gan, optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimiser.zero_grad(set_to_none=True)
    gan.scaler.scale(loss).backward()
    gan.scaler.step(optimiser)


def noise_step(gan: Gan, batch: Batch, p: CganParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the paper's C-GAN on (real faces, z-scored lips): (loss_d, loss_g)."""
    real, lips = batch
    netG, netD = gan.netG, gan.netD
    z = torch.randn(len(real), p.noise_dim, device=gan.device)

    # (1) Update D network: maximize log(D(x|y)) + log(1 - D(G(z|y)|y))
    with autocast(gan.device, gan.use_amp):
        fake = netG(z, lips)
        logit_real = netD(real, lips)
        logit_fake = netD(fake.detach(), lips)
        loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.full_like(logit_real, p.real_label))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    _update(gan, gan.optD, loss_d)

    # (2) Update G network: maximize log(D(G(z|y)|y)), plus L1 towards the real frame when asked
    with autocast(gan.device, gan.use_amp):
        logit_fake = netD(fake, lips)
        loss_g = F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))
        if p.l1_weight > 0:
            loss_g = loss_g + p.l1_weight * (fake.float() - real).abs().mean()
    _update(gan, gan.optG, loss_g)
    gan.scaler.update()
    return loss_d, loss_g


def frame_step(gan: Gan, batch: Batch, p: CganParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the frame generator (models/networks/unet.py): the PatchGANs (cgan.discriminator_scales)
    on (image, masked crop, lips) when cgan.adversarial_weight > 0 (loss_d is 0 without it), then the
    generator on cgan.l1_weight x the mouth-weighted L1 + cgan.gradient_weight x that of the gradients
    + cgan.detail_weight x that of the fine-detail energy + cgan.adversarial_weight x the adversarial
    term + cgan.feature_matching_weight x feature matching."""
    real, mask, reference, lips, weights = batch
    x = generator_input(real, mask, reference, lips)
    masked = x[:, :3]
    with autocast(gan.device, gan.use_amp):
        fake = gan.netG(x)
    fake_logits, matching, loss_d = None, 0.0, torch.zeros((), device=gan.device)
    if p.adversarial_weight > 0:
        with autocast(gan.device, gan.use_amp):
            loss_d = discriminator_loss(_floats(gan.netD(real, masked, lips)),
                                        _floats(gan.netD(fake.detach(), masked, lips)), mask)
        _update(gan, gan.optD, loss_d)
        # under torchrun netD is DistributedDataParallel, which forwards only forward(): features() is its
        # module's (its gradients here reach the generator alone; the next discriminator step zeroes them)
        critic = getattr(gan.netD, "module", gan.netD)
        with autocast(gan.device, gan.use_amp):
            fake_features = critic.features(fake, masked, lips)
            fake_logits = [scale[-1].float() for scale in fake_features]
            if p.feature_matching_weight > 0:
                with torch.no_grad():
                    real_features = critic.features(real, masked, lips)
                matching = p.feature_matching_weight * feature_matching(fake_features, real_features).float()
    loss_g, _ = generator_loss(fake.float(), real, weights, fake_logits, mask, p.l1_weight,
                               p.adversarial_weight, p.gradient_weight, p.detail_weight)
    _update(gan, gan.optG, loss_g + matching)
    gan.scaler.update()
    return loss_d, loss_g


def _floats(logits: list[torch.Tensor]) -> list[torch.Tensor]:
    return [scale.float() for scale in logits]


STEPS = {"noise": noise_step, "frame": frame_step}


def to_device(batch: Batch, gan: Gan) -> Batch:
    """A batch on the GAN's device, images (4-D) in its memory format."""
    return [t.to(gan.device, non_blocking=True).contiguous(memory_format=gan.memory_format) if t.dim() == 4
            else t.to(gan.device, non_blocking=True) for t in batch]


def train_epoch(gan: Gan, loader: DataLoader, p: CganParams, after_step=None) -> dict[str, float]:
    """One pass over `loader`: the mean loss_d and loss_g per step. `after_step()` is called after each
    step; when it returns True the epoch ends there."""
    gan.netG.train()
    gan.netD.train()
    step_of = STEPS[gan.condition]
    sums, steps = {"loss_d": 0.0, "loss_g": 0.0}, 0
    for batch in loader:
        loss_d, loss_g = step_of(gan, to_device(list(batch), gan), p)
        sums["loss_d"] += loss_d.item()
        sums["loss_g"] += loss_g.item()
        steps += 1
        if after_step is not None and after_step():
            break
    return {name: total / max(steps, 1) for name, total in sums.items()}


@torch.no_grad()
def fakes(generator: nn.Module, condition: Condition, noise: torch.Tensor | None, batch: Batch,
          batch_size: int, device: torch.device) -> torch.Tensor:
    """The generator's faces for a fixed batch (as a dataset yields it), as float on the CPU: the noise
    generator from one noise vector and the lips, the frame generator from the crops, references, lips."""
    generator.eval()
    out = []
    for start in range(0, len(batch[0]), batch_size):
        part = [t[start : start + batch_size].to(device) for t in batch]
        if condition == "frame":
            images = generator(generator_input(*part[:4]))
        else:
            images = generator(noise.expand(len(part[1]), -1).to(device), part[1])
        out.append(images.float().cpu())
    return torch.cat(out)
