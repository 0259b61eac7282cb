"""The frame generator's losses (models/networks/unet.py; `cgan.condition: frame`), all over the masked
region only (ARCHITECTURE.md, Adapted targets): `generator_loss` is an L1 weighted toward the mouth
(`mouth_weights`), an L1 of the images' gradients weighted the same (`gradient_l1`: an edge or a tooth
painted soft costs there what a wrong colour costs in the L1), an L1 of their fine-detail energy
(`detail_l1`) and the least-squares adversarial term over the masked patches; `discriminator_loss` is
the PatchGANs' (`patch_weights`), `feature_matching` pix2pixHD's L1 of their activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Logits = torch.Tensor | list[torch.Tensor]  # a discriminator's, or one per scale (MultiScaleDiscriminator)


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's feature matching: the mean L1 of the activations on the fake against the real's."""
    pairs = [(f, r.detach()) for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1])]
    return torch.stack([(f - r).abs().mean() for f, r in pairs]).mean()


def mouth_weights(lips: torch.Tensor, mask: torch.Tensor, mouth: float = 4.0) -> torch.Tensor:
    """(B, 1, S, S) L1 weights: 0 outside the mask, 1 inside it, up to 1 + `mouth` over the mouth (a
    Gaussian over the lips' box, twice its size). lips: (B, LIPS_DIM) in [0, 1] of the crop (not
    z-scored); mask: (B, 1, S, S)."""
    side = mask.shape[-1]
    points = lips.reshape(len(lips), -1, 2)
    low, high = points.amin(1), points.amax(1)  # (B, 2) x, y
    centre, half = (low + high) / 2, ((high - low) / 2).clamp(min=2 / side) * 2
    grid = (torch.arange(side, dtype=mask.dtype, device=mask.device) + 0.5) / side
    dx = (grid[None, None, :] - centre[:, 0, None, None]) / half[:, 0, None, None]
    dy = (grid[None, :, None] - centre[:, 1, None, None]) / half[:, 1, None, None]
    bump = torch.exp(-(dx**2 + dy**2) / 2)
    return mask * (1 + mouth * bump[:, None])


def patch_weights(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The share of each discriminator patch's footprint that is masked: patches wholly outside the
    mask see the same pixels, real or fake, and say nothing."""
    return F.adaptive_avg_pool2d(mask, logits.shape[-2:])


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / (weights.sum() * values.shape[1] / weights.shape[1]).clamp(min=1e-6)


def gradient_l1(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The L1 of `fake`'s gradients (horizontal and vertical neighbour differences) against `real`'s,
    weighted by `weights` (B, 1, S, S) where both pixels of a pair are weighted (the lesser weight)."""
    error = fake - real
    horizontal = (error[..., :, 1:] - error[..., :, :-1]).abs()
    vertical = (error[..., 1:, :] - error[..., :-1, :]).abs()
    return (_weighted_mean(horizontal, torch.minimum(weights[..., :, 1:], weights[..., :, :-1]))
            + _weighted_mean(vertical, torch.minimum(weights[..., 1:, :], weights[..., :-1, :]))) / 2


# how far detail_l1's two blurs reach (their radii, 3 sigma: 3 + 6 px)
DETAIL_REACH = 9


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (B, C, S, S), edges reflected."""
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel, channels = kernel / kernel.sum(), images.shape[1]
    h = F.pad(images, (radius,) * 4, mode="reflect")
    h = F.conv2d(h, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(h, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def mask_box(mask: torch.Tensor, margin: int) -> tuple[slice, ...]:
    """The index of (B, C, S, S) maps' rows and columns where any of the batch's masks (B, 1, S, S) is
    non-zero, `margin` px beyond on each side (all of them for an empty mask), explicit (start, stop)
    slices of square maps: what a computation that
    matters only inside the masks, and reaches `margin` px, needs to run over."""
    anywhere = mask.amax(dim=(0, 1))
    rows, columns = (torch.nonzero(anywhere.amax(dim=dim)).flatten() for dim in (1, 0))
    side = mask.shape[-1]
    if not len(rows):
        return slice(None), slice(None), slice(0, side), slice(0, side)

    def span(found: torch.Tensor) -> slice:
        return slice(max(int(found[0]) - margin, 0), min(int(found[-1]) + 1 + margin, side))

    return slice(None), slice(None), span(rows), span(columns)


def detail_l1(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The L1 of the local fine-detail energy (|image - its 1 px Gaussian blur|, over the channels,
    averaged over ~2 px) of `fake` against `real`, weighted by `weights` (B, 1, S, S): as much texture as
    the real frame has there, wherever its edges lie (gradient_l1 asks them in place, which a reference of
    another frame cannot give, so it also rewards a smooth guess). Computed over the weights' box alone
    (the blurs reach DETAIL_REACH px): the same figure, a third of the pixels."""
    def energy(images: torch.Tensor) -> torch.Tensor:
        return _blur((images - _blur(images, 1.0)).abs().mean(1, keepdim=True), 2.0)

    box = mask_box(weights, DETAIL_REACH)
    return _weighted_mean((energy(fake[box]) - energy(real[box])).abs(), weights[box])


def generator_loss(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor,
                   fake_logits: Logits | None = None, mask: torch.Tensor | None = None,
                   l1_weight: float = 100.0, adversarial_weight: float = 1.0, gradient_weight: float = 0.0,
                   detail_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, its parts): `l1_weight` x the L1 of `fake` vs `real` weighted by `weights`
    (`mouth_weights`), + `gradient_weight` x their `gradient_l1` and `detail_weight` x their `detail_l1`,
    weighted the same, + `adversarial_weight` x the least-squares adversarial loss of `fake_logits` over
    the masked patches (`mask` needed then). Images in [-1, 1]."""
    l1 = _weighted_mean((fake - real).abs(), weights)
    loss, parts = l1_weight * l1, {"l1": float(l1.detach())}
    for name, term, weight in (("gradient", gradient_l1, gradient_weight),
                               ("detail", detail_l1, detail_weight)):
        if weight > 0:
            value = term(fake, real, weights)
            loss = loss + weight * value
            parts[name] = float(value.detach())
    if fake_logits is not None:
        adversarial = torch.stack([_weighted_mean((logits - 1) ** 2, patch_weights(mask, logits))
                                   for logits in _scales(fake_logits)]).mean()
        loss = loss + adversarial_weight * adversarial
        parts["adversarial"] = float(adversarial.detach())
    return loss, parts


def _scales(logits: Logits) -> list[torch.Tensor]:
    return logits if isinstance(logits, list) else [logits]


def discriminator_loss(real_logits: Logits, fake_logits: Logits, mask: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: real patches toward 1, fake toward 0, over the masked patches (at every scale)."""
    losses = []
    for real, fake in zip(_scales(real_logits), _scales(fake_logits)):
        weights = patch_weights(mask, real)
        losses.append((_weighted_mean((real - 1) ** 2, weights) + _weighted_mean(fake**2, weights)) / 2)
    return torch.stack(losses).mean()
