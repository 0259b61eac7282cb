"""Lips -> face: the generators of both conditions (models/artifacts.py: Condition), and their faces.

`noise` (the paper, 4.3 and Fig. 3): a conditional DCGAN at 128x128 mapping 50-D noise + 16-D lips (66-D)
to a 3x128x128 image in [-1, 1] (FACE_SIZE, the one size it makes); its discriminator sees the image with
the lips broadcast as 16 more channels (19x128x128). `frame`: the U-Net of models/networks/unet.py, which
paints the lower face of a target frame's own crop. Both take lips z-scored with the training set's
stats, which travel in the artifact (models/artifacts.py); `generate_faces` does the round trip from lips
in [0, 1] of the crop to uint8 images for either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.artifacts import CganArtifact
from models.errors import CheckpointError
from models.networks.unet import UNetGenerator, chosen_references, frame_input
from models.records import References
from tasks.config.params import CganParams
from tasks.rows.landmarks import LIPS_DIM

# The networks' widths default to the params' (tasks/config/params.py, params.yaml): one default, not two.
_DEFAULTS = CganParams()


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, noise_dim: int = _DEFAULTS.noise_dim, lips: int = LIPS_DIM, ngf: int = _DEFAULTS.ngf):
        super().__init__()
        self.noise_dim = noise_dim
        self.main = nn.Sequential(
            # input is Z and the lips, going into a convolution: (noise_dim + lips) x 1 x 1
            nn.ConvTranspose2d(noise_dim + lips, ngf * 16, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 16),
            nn.ReLU(True),
            # (ngf*16) x 4 x 4
            nn.ConvTranspose2d(ngf * 16, ngf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # (ngf*8) x 8 x 8
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # (ngf*4) x 16 x 16
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # (ngf*2) x 32 x 32
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # ngf x 64 x 64
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
            # 3 x 128 x 128
        )
        self.apply(init_weights)

    @staticmethod
    def hparams(params: CganParams) -> dict:
        """The constructor's arguments, as saved in the artifact (`hparams`)."""
        return {"noise_dim": params.noise_dim, "lips": LIPS_DIM, "ngf": params.ngf}

    def forward(self, noise: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        # noise: (B, noise_dim), lips: (B, LIPS_DIM) z-scored -> (B, 3, FACE_SIZE, FACE_SIZE) in [-1, 1]
        return self.main(torch.cat([noise, lips], 1)[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, lips: int = LIPS_DIM, ndf: int = _DEFAULTS.ndf):
        super().__init__()
        self.main = nn.Sequential(
            # input is the image and the lips broadcast over it: (3 + lips) x 128 x 128
            nn.Conv2d(3 + lips, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # ndf x 64 x 64
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*2) x 32 x 32
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*4) x 16 x 16
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*8) x 8 x 8
            nn.Conv2d(ndf * 8, ndf * 16, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 16),
            nn.LeakyReLU(0.2, inplace=True),
            # (ndf*16) x 4 x 4
            nn.Conv2d(ndf * 16, 1, 4, 1, 0, bias=False),
            # 1 x 1 x 1: a logit, the sigmoid lives in the loss (BCEWithLogits, safe under autocast)
        )
        self.apply(init_weights)

    def forward(self, image: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        # image: (B, 3, FACE_SIZE, FACE_SIZE), lips: (B, LIPS_DIM) z-scored
        # -> (B,) logits of "real, and matching these lips"
        b, _, h, w = image.shape
        lips = lips[:, :, None, None].expand(b, lips.size(1), h, w).to(image.dtype)
        x = torch.cat([image, lips], 1)
        if image.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.main(x).view(-1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1], as the generator makes them -> (N, H, W, 3) uint8 images."""
    return ((images + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1)


# The generator of each condition (models/artifacts.py: Condition) this version builds.
GENERATORS: dict[str, type[nn.Module]] = {"noise": Generator, "frame": UNetGenerator}


def generator_hparams(params: CganParams, face_size: int) -> dict:
    """The constructor's arguments of cgan.condition's generator for crops of `face_size`: ngf is its
    width at the finest scale (models/networks/unet.py doubles it per halving)."""
    if params.condition == "frame":
        return UNetGenerator.hparams(face_size, params.ngf)
    return Generator.hparams(params)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CganArtifact]:
    """(generator in eval mode on `device`, its artifact) from a file written by
    models.training.train_cgan."""
    artifact = CganArtifact.load(path)
    network = GENERATORS.get(artifact.condition)
    if network is None:
        raise CheckpointError(
            f"{path}: a generator conditioned on {artifact.condition!r}, which this version does not build"
        )
    return artifact.network(network, path, device), artifact


@dataclass
class Frames:
    """What the frame generator paints into, one row per face asked for: aligned crops of the target's
    frames (N, S, S, 3) uint8, their landmarks (N, 68, 2) in crop pixels, and the reference crops
    (N, S, S, 3) uint8 (models/networks/unet.py: pick_references)."""

    crops: np.ndarray
    landmarks: np.ndarray
    references: np.ndarray

    @classmethod
    def of(cls, crops: np.ndarray, landmarks: np.ndarray, lips: np.ndarray, bank: References,
           artifact: CganArtifact) -> Frames:
        """The crops with the references `chosen_references` gives from `bank` for `lips`, warped onto
        each crop when the `artifact`'s generator was trained so."""
        return cls(crops, landmarks, chosen_references(lips, bank, landmarks, artifact.lip_indices,
                                                       artifact.warps_references))


@torch.no_grad()
def generate_faces(generator: nn.Module, artifact: CganArtifact, lips: np.ndarray,
                   noise: torch.Tensor | None = None, batch_size: int = 256,
                   frames: Frames | None = None) -> np.ndarray:
    """(frames, LIPS_DIM) lips in [0, 1] of the crop -> (frames, S, S, 3) uint8 faces. The noise
    generator makes them from one noise vector for all frames (default: the artifact's), so that only
    the lips change; the frame generator paints the lower face of `frames`' crops (needed then)."""
    device = next(generator.parameters()).device
    size = artifact.face_size
    z = torch.from_numpy(
        ((np.asarray(lips, np.float32) - artifact.lips_mean) / artifact.lips_std).astype(np.float32)
    )
    if artifact.condition == "frame" and frames is None:
        raise ValueError("the frame generator paints into the target's frames: pass `frames`")
    noise = torch.from_numpy(artifact.noise) if noise is None and frames is None else noise
    faces = []
    for start in range(0, len(z), batch_size):
        batch = z[start : start + batch_size]
        if artifact.condition == "frame":
            stop = start + len(batch)
            # the lips apart, never 16 constant channels at every pixel (UNetGenerator._first)
            x = frame_input(frames.crops[start:stop], frames.landmarks[start:stop],
                            frames.references[start:stop], None)
            # NHWC: oneDNN's convolutions run ~1.4x faster on CPU (models/rendering/loading.py)
            x = x.to(device, memory_format=torch.channels_last)
            images = generator(x, batch.to(device))
        else:
            images = generator(noise.expand(len(batch), -1).to(device), batch.to(device))
        faces.append(to_uint8(images.float()).cpu())
    return torch.cat(faces).numpy() if faces else np.zeros((0, size, size, 3), np.uint8)

