"""What judges the frame generator's paintings (models/networks/unet.py): `PatchDiscriminator`, one
logit per ~70-pixel patch of (image, masked crop, lips), and `MultiScaleDiscriminator`, several of them
at halved scales (pix2pixHD's). Their losses, feature matching among them, are
models/networks/unet_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.networks.unet import FRAME, broadcast
from tasks.rows.landmarks import LIPS_DIM


class PatchDiscriminator(nn.Module):
    """(image, masked crop, lips) -> (B, 1, S/8 - 2, S/8 - 2) logits, one per ~70-pixel patch, of "a
    real lower face in this frame, with these lips". Spectral-normalised convolutions (pix2pix's
    PatchGAN, without batch norm)."""

    def __init__(self, lips: int = LIPS_DIM, base: int = 32, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = []
        cin = FRAME + FRAME + lips
        for i in range(layers):
            cout = base * 2**i
            blocks += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            cin = cout
        blocks += [spectral_norm(nn.Conv2d(cin, cin * 2, 4, 1, 1)), nn.LeakyReLU(0.2, True),
                   spectral_norm(nn.Conv2d(cin * 2, 1, 4, 1, 1))]
        self.main = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor, masked: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        return self.features(image, masked, lips)[-1]

    def features(self, image: torch.Tensor, masked: torch.Tensor, lips: torch.Tensor) -> list[torch.Tensor]:
        """Each convolution's activations, the logits last (what feature matching compares)."""
        h = torch.cat([image, masked, broadcast(lips.to(image.dtype), image.shape[-1])], 1)
        out = []
        for layer in self.main:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                out.append(h)
        return [*out, h]


class MultiScaleDiscriminator(nn.Module):
    """`scales` PatchDiscriminators (pix2pixHD's), the k-th judging the images halved k times: the finest
    sees teeth and skin texture, the coarser the mouth as a whole. forward: the logits of each scale;
    `features`: each scale's activations (`PatchDiscriminator.features`)."""

    def __init__(self, lips: int = LIPS_DIM, base: int = 32, layers: int = 3, scales: int = 1):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(lips, base, layers) for _ in range(scales))

    def _inputs(self, image: torch.Tensor, masked: torch.Tensor):
        for scale in self.scales:
            yield scale, image, masked
            image, masked = F.avg_pool2d(image, 2), F.avg_pool2d(masked, 2)

    def forward(self, image: torch.Tensor, masked: torch.Tensor, lips: torch.Tensor) -> list[torch.Tensor]:
        return [scale(i, m, lips) for scale, i, m in self._inputs(image, masked)]

    def features(self, image: torch.Tensor, masked: torch.Tensor,
                 lips: torch.Tensor) -> list[list[torch.Tensor]]:
        return [scale.features(i, m, lips) for scale, i, m in self._inputs(image, masked)]
