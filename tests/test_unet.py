"""The frame-conditioned generator (models/networks/unet.py) on tensors: its input, shapes at both sizes, the
frame kept outside the mask and hidden inside it, the mouth-weighted loss, and a few steps that learn."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import simplejpeg
import torch
from test_composite import MEAN_FACE

from models.networks import unet as unet_module
from models.networks import unet_losses
from models.networks.mask import lower_face_mask
from models.networks.patch import MultiScaleDiscriminator, PatchDiscriminator
from models.networks.unet import (
    GIVEN,
    IN_CHANNELS,
    NEAR_GAP,
    UNetGenerator,
    frame_input,
    generator_input,
    hard_mask,
    images,
    pick_references,
    reference_bank,
)
from models.networks.unet_losses import (
    detail_l1,
    discriminator_loss,
    feature_matching,
    generator_loss,
    gradient_l1,
    mouth_weights,
    patch_weights,
)
from models.records import References
from tasks.rows.landmarks import LIPS_DIM

LIP_INDICES = [48, 50, 52, 54, 56, 58, 62, 66]


def everywhere(mask: torch.Tensor, margin: int) -> tuple[slice, ...]:
    """unet_losses.mask_box as if every mask covered the whole crop."""
    return slice(None), slice(None), slice(0, mask.shape[-1]), slice(0, mask.shape[-1])


def face_batch(size: int, batch: int = 2, seed: int = 0):
    """(crops, hard masks, references, lips in [0, 1]) for the mean face at `size`."""
    generator = torch.Generator().manual_seed(seed)
    landmarks = MEAN_FACE * size / 128
    mask = torch.from_numpy(hard_mask(landmarks, size))[None, None].expand(batch, 1, size, size)
    crops = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    references = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    lips = torch.from_numpy(landmarks[LIP_INDICES].reshape(-1) / size).expand(batch, LIPS_DIM)
    return crops, mask.contiguous(), references, lips.contiguous()


def test_the_hard_mask_is_the_compositing_mask_made_hard():
    mask, soft = hard_mask(MEAN_FACE, 128), lower_face_mask(MEAN_FACE, 128)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert np.array_equal(mask > 0, soft >= 0.5)
    for point in MEAN_FACE[48:68]:  # the whole mouth is painted
        assert mask[int(point[1]), int(point[0])] == 1
    for eye in (MEAN_FACE[36:42].mean(0), MEAN_FACE[42:48].mean(0)):
        assert mask[int(eye[1]), int(eye[0])] == 0


def test_the_input_hides_the_lower_face_and_carries_the_rest():
    crops, mask, references, lips = face_batch(128)
    x = generator_input(crops, mask, references, lips)
    assert x.shape == (2, IN_CHANNELS, 128, 128) and IN_CHANNELS == 3 + 1 + 3 + LIPS_DIM
    assert torch.equal(x[:, :3] * mask, torch.zeros_like(crops))
    assert torch.equal(x[:, :3] * (1 - mask), crops * (1 - mask))
    assert torch.equal(x[:, 3:4], mask) and torch.equal(x[:, 4:7], references)
    assert torch.equal(x[:, 7:, 64, 5], lips) and torch.equal(x[:, 7:, 0, 127], lips)


@pytest.mark.parametrize("size", [128, 256])
def test_shapes_and_the_frame_kept_outside_the_mask(size):
    torch.manual_seed(0)
    generator, discriminator = UNetGenerator(size, base=8, residual=False), PatchDiscriminator(base=8)
    crops, mask, references, lips = face_batch(size)
    with torch.no_grad():
        out = generator(generator_input(crops, mask, references, lips))
        logits = discriminator(out, crops * (1 - mask), lips)
    assert out.shape == (2, 3, size, size) and out.abs().max() <= 1
    assert torch.equal(out * (1 - mask), crops * (1 - mask))  # exactly the input frame there
    assert (out - crops)[mask.expand_as(out) > 0].abs().mean() > 0.1  # painted, not copied, inside
    assert logits.shape == (2, 1, size // 8 - 2, size // 8 - 2)


def test_the_multi_scale_discriminator_judges_each_scale_and_matches_features_only_where_they_differ():
    torch.manual_seed(0)
    crops, mask, references, lips = face_batch(128)
    discriminator = MultiScaleDiscriminator(base=8, scales=2).eval()  # spectral norm's power step held
    masked = crops * (1 - mask)
    logits = discriminator(crops, masked, lips)
    assert [tuple(scale.shape) for scale in logits] == [(2, 1, 14, 14), (2, 1, 6, 6)]
    features = discriminator.features(crops, masked, lips)
    assert [len(scale) for scale in features] == [5, 5]  # four activations, then the logits
    assert torch.equal(features[1][-1], logits[1])
    assert feature_matching(features, features).item() == 0
    fake = crops * (1 - mask) + references * mask
    matching = feature_matching(discriminator.features(fake, masked, lips), features)
    assert matching.item() > 0
    matching.backward()  # the gradient reaches the discriminator through the fake only
    assert discriminator.scales[0].main[0].parametrizations.weight.original.grad.abs().sum() > 0
    assert discriminator_loss(logits, [scale + 1 for scale in logits], mask) > discriminator_loss(
        logits, logits, mask)


def test_only_128_and_256():
    with pytest.raises(ValueError, match="size must be one of"):
        UNetGenerator(64)


def test_a_residual_generator_starts_as_the_reference_and_a_plain_one_does_not():
    torch.manual_seed(0)
    crops, mask, references, lips = face_batch(128)
    x = generator_input(crops, mask, references, lips)
    with torch.no_grad():
        residual, plain = UNetGenerator(128, base=8)(x), UNetGenerator(128, base=8, residual=False)(x)
    assert torch.equal(residual, torch.where(mask > 0, references, crops))
    assert (plain - references)[mask.expand_as(plain) > 0].abs().mean() > 0.1


def test_a_grown_generator_starts_as_the_smaller_ones_painting_on_the_full_size_reference():
    """UNetGenerator.grown: the smaller generator's U-Net runs as it is on the input pooled to its size,
    and its change, upsampled, is painted onto the full-size reference; the new level adds nothing yet.
    What is under the mask still never reaches the output, and a grown one does not grow again."""
    torch.manual_seed(0)
    small = UNetGenerator(128, base=8).eval()
    torch.nn.init.normal_(small.head.weight, 0.0, 0.02)  # as if trained
    hparams, weights = UNetGenerator.grown(UNetGenerator.hparams(128, 8), small.state_dict(), 256)
    assert (hparams["size"], hparams["inner"]) == (256, 128)
    big = UNetGenerator(**hparams).eval()
    big.load_state_dict(weights)
    assert all(torch.equal(weights[name], value) for name, value in small.state_dict().items())
    crops, mask, references, lips = face_batch(256)
    x = generator_input(crops, mask, references, lips)
    with torch.no_grad():
        out = big(x)
        pooled = torch.nn.functional.interpolate(x, size=128, mode="area")
        painted = small.head(small._features(pooled[:, :GIVEN], lips))
        change = torch.nn.functional.interpolate(painted, size=256, mode="bicubic", align_corners=False)
        other = big(generator_input(torch.where(mask > 0, -crops, crops), mask, references, lips))
    torch.testing.assert_close(out, torch.where(mask > 0, (references + change).clamp(-1, 1), crops))
    assert change.abs().max() > 1e-3, "the smaller one's change is there"
    assert torch.equal(out, other)
    with pytest.raises(ValueError, match="cannot grow again"):
        UNetGenerator.grown(hparams, weights, 256)
    with pytest.raises(ValueError, match="inner 256"):
        UNetGenerator(128, base=8, inner=256)


@pytest.mark.parametrize("residual", [True, False])
def test_what_is_under_the_mask_never_reaches_the_output_and_the_lips_do(residual):
    torch.manual_seed(0)
    generator = UNetGenerator(128, base=8, residual=residual).eval()
    torch.nn.init.normal_(generator.head.weight, 0.0, 0.1)  # as if trained: a residual one starts at zero
    crops, mask, references, lips = face_batch(128)
    other = torch.where(mask > 0, -crops, crops)  # a different lower face, the same frame elsewhere
    with torch.no_grad():
        out = generator(generator_input(crops, mask, references, lips))
        same = generator(generator_input(other, mask, references, lips))
        moved = generator(generator_input(crops, mask, references, lips + 0.5))
    assert torch.equal(out, same)
    assert (moved - out).abs().max() > 1e-3


def test_the_l1_weighs_the_mouth_and_ignores_the_outside():
    crops, mask, _, lips = face_batch(128, batch=1)
    weights = mouth_weights(lips, mask, mouth=4.0)
    mouth = MEAN_FACE[48:68].mean(0).astype(int)
    assert weights[0, 0, mouth[1], mouth[0]] > 4.5
    assert torch.equal(weights[mask == 0], torch.zeros_like(weights[mask == 0]))
    chin = MEAN_FACE[8].astype(int)
    assert 1 <= weights[0, 0, chin[1] - 4, chin[0]] < 2
    # an error at the mouth costs more than the same error at the chin; one outside costs nothing
    def cost(y: int, x: int) -> float:
        fake = crops.clone()
        fake[..., y - 2 : y + 2, x - 2 : x + 2] += 0.5
        return generator_loss(fake, crops, weights)[0].item()

    assert cost(mouth[1], mouth[0]) > 2 * cost(chin[1] - 4, chin[0]) > 0
    assert cost(20, 20) == 0


def test_the_gradient_term_costs_a_blur_more_than_a_shift_of_colour_and_ignores_the_outside():
    crops, mask, _, lips = face_batch(128, batch=1)
    smooth = torch.nn.functional.avg_pool2d(crops, 5, 1, 2)  # a real-looking picture has some smooth parts
    real = (smooth + 0.3 * crops).clamp(-1, 1)
    weights = mouth_weights(lips, mask, mouth=4.0)
    blurred = torch.nn.functional.avg_pool2d(real, 3, 1, 1)
    tinted = (real + 0.1).clamp(-1, 1)  # every pixel a tenth off, every edge kept
    l1 = {name: generator_loss(fake, real, weights, l1_weight=1.0)[1]["l1"]
          for name, fake in (("blurred", blurred), ("tinted", tinted))}
    gradient = {name: gradient_l1(fake, real, weights).item() for name, fake in (("blurred", blurred),
                                                                                  ("tinted", tinted))}
    assert gradient_l1(real, real, weights).item() == 0
    assert gradient["blurred"] / gradient["tinted"] > 5 * l1["blurred"] / l1["tinted"]
    loss, parts = generator_loss(blurred, real, weights, l1_weight=1.0, gradient_weight=2.0)
    assert loss.item() == pytest.approx(parts["l1"] + 2.0 * parts["gradient"], rel=1e-5)
    assert "gradient" not in generator_loss(blurred, real, weights)[1]  # off by default
    outside = real.clone()
    outside[..., :20, :20] = 0  # the forehead: outside the mask
    assert gradient_l1(outside, real, weights).item() == 0 and detail_l1(outside, real, weights).item() == 0


def test_the_detail_term_wants_as_much_texture_wherever_its_edges_lie():
    crops, mask, _, lips = face_batch(128, batch=1)
    real = (torch.nn.functional.avg_pool2d(crops, 5, 1, 2) + 0.3 * crops).clamp(-1, 1)
    weights = mouth_weights(lips, mask, mouth=4.0)
    blurred = torch.nn.functional.avg_pool2d(real, 3, 1, 1)
    moved = torch.roll(real, 3, -1)  # the same texture, 3 px off: the L1 and the gradient L1 punish it
    assert detail_l1(real, real, weights).item() == 0
    assert detail_l1(blurred, real, weights) > 3 * detail_l1(moved, real, weights)
    assert gradient_l1(moved, real, weights) > gradient_l1(blurred, real, weights)
    loss, parts = generator_loss(blurred, real, weights, l1_weight=1.0, detail_weight=3.0)
    assert loss.item() == pytest.approx(parts["l1"] + 3.0 * parts["detail"], rel=1e-5)


def test_the_detail_term_over_the_masks_box_is_the_term_over_the_whole_crop(monkeypatch):
    crops, mask, _, lips = face_batch(256, batch=2)
    weights = mouth_weights(lips, mask, mouth=4.0)
    fake = torch.nn.functional.avg_pool2d(crops, 3, 1, 1)
    boxed = detail_l1(fake, crops, weights)
    monkeypatch.setattr(unet_losses, "mask_box", everywhere)
    torch.testing.assert_close(boxed, detail_l1(fake, crops, weights))


def test_patches_outside_the_mask_say_nothing():
    _, mask, _, _ = face_batch(128)
    real_logits, fake_logits = torch.zeros(2, 1, 14, 14), torch.zeros(2, 1, 14, 14)
    weights = patch_weights(mask, fake_logits)
    assert weights[:, :, 0].max() == 0 and weights[:, :, 10, 7].min() > 0.5  # forehead, mouth
    changed = fake_logits.clone()
    changed[:, :, 0] = 5.0
    before = discriminator_loss(real_logits, fake_logits, mask)
    assert discriminator_loss(real_logits, changed, mask) == before
    assert discriminator_loss(real_logits, fake_logits + 1, mask) > before


def test_a_few_dozen_steps_reduce_the_masked_l1():
    """A smooth face with a dark mouth whose height follows the lips; 30 Adam steps on 2 crops, with the
    two-scale discriminator and its feature matching in the loop, must cut the masked L1 well below where
    it starts."""
    torch.manual_seed(0)
    size = 128
    crops, mask, _, lips = face_batch(size, batch=2)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    opening = torch.tensor([0.03, 0.10])
    mouth = ((xx / 0.25) ** 2)[None] + ((yy - 0.24)[None] / opening[:, None, None]) ** 2 < 1
    crops = (0.4 + 0.2 * yy - 0.1 * xx).expand(2, 3, size, size).clone()
    crops[mouth[:, None].expand_as(crops)] = -0.6
    lips = lips.clone()
    lips[:, 13] -= opening / 4  # the inner-lip points (62, 66: y at 13, 15) part with the opening
    lips[:, 15] += opening / 4
    references = torch.zeros_like(crops)  # nothing to copy: the lower face comes from the context and lips
    generator, discriminator = UNetGenerator(size, base=8), MultiScaleDiscriminator(base=8, scales=2)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4)
    x, weights = generator_input(crops, mask, references, (lips - 0.5) / 0.1), mouth_weights(lips, mask)
    losses = []
    for _ in range(30):
        fake = generator(x)
        real_logits = discriminator(crops, x[:, :3], lips)
        loss_d = discriminator_loss(real_logits, discriminator(fake.detach(), x[:, :3], lips), mask)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        fake_features = discriminator.features(fake, x[:, :3], lips)
        loss, parts = generator_loss(fake, crops, weights, [scale[-1] for scale in fake_features], mask)
        loss = loss + feature_matching(fake_features, discriminator.features(crops, x[:, :3], lips))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        losses.append(parts["l1"])
        assert set(parts) == {"l1", "adversarial"} and np.isfinite(parts["adversarial"])
    assert np.mean(losses[-5:]) < 0.4 * losses[0]


def test_rendering_input_is_the_training_input_channels_last():
    """frame_input (rendering: uint8 crops, landmarks) gives generator_input's values exactly, NHWC."""
    rng = np.random.default_rng(0)
    crops, references = (rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8) for _ in range(2))
    landmarks = np.stack([MEAN_FACE, MEAN_FACE + 2, np.full((68, 2), np.nan, np.float32)])
    lips = torch.randn(3, LIPS_DIM)
    x = frame_input(crops, landmarks, references, lips)
    mask = torch.from_numpy(np.stack([hard_mask(points, 128) for points in landmarks]))[:, None]
    assert mask[2].sum() == 0 and mask[0].sum() > 1000  # no face: nothing to paint
    assert torch.equal(x, generator_input(images(crops), mask, images(references), lips))
    assert x.is_contiguous(memory_format=torch.channels_last)
    given = frame_input(crops, landmarks, references, None)  # the lips apart (a grown generator's input)
    assert torch.equal(given, x[:, :GIVEN]) and given.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [128, 256])
def test_a_generator_given_its_lips_apart_paints_what_it_paints_given_them_as_channels(size):
    """forward(x[:, :GIVEN], lips) is forward(x): how a render spares a grown generator 16 constant
    channels at full size (models/networks/cgan.py: generate_faces)."""
    torch.manual_seed(0)
    small = UNetGenerator(128, base=8)
    torch.nn.init.normal_(small.head.weight, 0.0, 0.02)
    hparams, weights = UNetGenerator.grown(UNetGenerator.hparams(128, 8), small.state_dict(), size) \
        if size > 128 else (UNetGenerator.hparams(128, 8), small.state_dict())
    generator = UNetGenerator(**hparams).eval()
    generator.load_state_dict(weights)
    if size > 128:
        torch.nn.init.normal_(generator.outer_head.weight, 0.0, 0.05)
    crops, mask, references, lips = face_batch(size)
    x = generator_input(crops, mask, references, lips)
    with torch.no_grad():
        torch.testing.assert_close(generator(x[:, :GIVEN], lips), generator(x))


def test_the_first_level_hears_the_lips_as_their_constant_maps_would_give_them():
    """UNetGenerator._first adds the lips' share of the first convolution without making their maps: the
    same as that level run over generator_input, the image's first row and column (which miss a tap)
    included."""
    torch.manual_seed(0)
    generator = UNetGenerator(128, base=8).eval()
    crops, mask, references, lips = face_batch(128)
    lips = lips * 3  # large lips, so that a wrong share at the edges shows
    x = generator_input(crops, mask, references, lips)
    with torch.no_grad():
        torch.testing.assert_close(generator._first(x[:, :GIVEN], lips), generator.down[0](x))
        nhwc = x[:, :GIVEN].contiguous(memory_format=torch.channels_last)  # as a render gives it
        torch.testing.assert_close(generator._first(nhwc, lips), generator.down[0](x))


def test_references_are_the_nearest_lips_never_a_neighbour_and_spread_over_the_opening():
    frames = 100
    opening = np.abs(np.sin(np.arange(frames) / 7)).astype(np.float32) * 0.1
    lips = np.tile(MEAN_FACE[LIP_INDICES].reshape(-1) / 128, (frames, 1)).astype(np.float32)
    lips[:, 15] += opening  # 66, the inner lower lip, drops as the mouth opens
    lips[::10] = np.nan  # no face
    faces = pa.array([simplejpeg.encode_jpeg(np.full((128, 128, 3), i, np.uint8)) for i in range(frames)])
    rows = np.arange(frames) < 80
    landmarks = np.tile(MEAN_FACE, (frames, 1, 1))
    bank = reference_bank(lips, rows, faces, LIP_INDICES, 6, landmarks)
    assert len(bank.frames) == 6 and (bank.frames < 80).all() and (bank.frames % 10 != 0).all()
    assert bank.crops.shape == (6, 128, 128, 3) and np.abs(bank.crops[:, 0, 0, 0] - bank.frames).max() <= 2
    spread = opening[bank.frames]
    assert spread.min() < 0.01 and spread.max() > 0.09  # from closed to open
    # rendering: the nearest lips; training and measuring on the video's own frames: never a neighbour
    asked = bank.lips + 1e-4
    assert pick_references(asked, bank).tolist() == list(range(6))
    far = pick_references(asked, bank, at=bank.frames)
    assert (np.abs(bank.frames[far] - bank.frames) >= NEAR_GAP).all()
    crowded = References(bank.crops[:2], bank.lips[:2], np.array([50, 51]))
    assert pick_references(bank.lips[:2], crowded, at=np.array([50, 51])).tolist() == [0, 1]  # all near


def test_a_grown_generator_paints_its_detail_where_the_mask_is_as_it_would_everywhere(monkeypatch):
    """The full-size level runs over the masks' box alone (2 px beyond): inside the mask the output is
    what running it over the whole crop gives."""
    torch.manual_seed(0)
    small = UNetGenerator(128, base=8)
    hparams, weights = UNetGenerator.grown(UNetGenerator.hparams(128, 8), small.state_dict(), 256)
    big = UNetGenerator(**hparams).eval()
    big.load_state_dict(weights)
    torch.nn.init.normal_(big.outer_head.weight, 0.0, 0.05)  # as if trained
    crops, mask, references, lips = face_batch(256)
    x = generator_input(crops, mask, references, lips)
    with torch.no_grad():
        boxed = big(x)
        monkeypatch.setattr(unet_module, "mask_box", everywhere)
        whole = big(x)
    inside = mask.expand_as(boxed) > 0
    assert (boxed - torch.where(mask > 0, references, crops))[inside].abs().max() > 1e-3, "detail painted"
    torch.testing.assert_close(boxed[inside], whole[inside])
    torch.testing.assert_close(boxed[~inside], whole[~inside])
