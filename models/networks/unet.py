"""Lips -> lower face in the target's own frame: a frame-conditioned generator (`cgan.condition: frame`).

Where models/networks/cgan.py makes a whole face from noise and lips, this generator repaints only the lower
face of a real aligned crop, in that frame's own pose and light (as ObamaNet's pix2pix on a masked
face, Wav2Lip's masked lower half + reference frame, MuseTalk's masked latent + reference latent).
Its input (`generator_input`), channels in this order, all S x S (S = `size`, 128 or 256):

    3   the crop, [-1, 1], zeroed inside the hard mask (`hard_mask`: the compositing mask,
        models/networks/mask.py, where it is at least HARD_FROM, so the composite takes every pixel it
        blends from the generator from the painted region or from the frame itself)
    1   the hard mask, 1 inside the region to paint
    3   a reference crop of the same video, [-1, 1]: a mouth to copy texture and teeth from
    16  the lips, z-scored with the training set's stats, broadcast (as models/networks/cgan.py conditions)

A U-Net (skip connections at every scale) paints the region; the generator pastes its own input back
outside the mask, so its output differs from the crop only inside it. The lips enter again at the
bottleneck (4 x 4), where every output pixel sees them. With `residual` (the default) it paints the
reference plus a learned change, and starts as the reference itself: given the training frame whose
lips are nearest as the reference, it begins at lips retrieval and learns to fit that mouth to this
frame's pose, light and lips (on a CPU budget of minutes, from scratch it does not get that far).
What judges its paintings is models/networks/patch.py; what they are trained with,
models/networks/unet_losses.py. Here too: the reference bank of a video and the reference each painted
frame gets (`reference_bank`, `pick_references`).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import nn

from models.networks.mask import lower_face_mask
from models.networks.reference_warp import warp_reference
from models.networks.unet_losses import mask_box
from models.records import References
from tasks.config.params import FACE_SIZES
from tasks.rows.landmarks import LIPS_DIM, lips_opening
from tasks.table.shards import decode_crops, evenly_spaced

# The hard mask: where the compositing mask is at least this. 0.5 is its polygon (the jaw pushed out,
# the nose base); outside it the composite fades to the frame, which is what the generator returns there.
HARD_FROM = 0.5
FRAME, MASK, REFERENCE = 3, 1, 3
GIVEN = FRAME + MASK + REFERENCE  # the image channels: all but the lips
IN_CHANNELS = GIVEN + LIPS_DIM
BOTTLENECK = 4  # side of the U-Net's coarsest feature map, at every size
SIZES = FACE_SIZES
# A frame's reference is never one of its own neighbours (in training, and when a video's own frames are
# painted to be measured): a mouth this few frames away is nearly the answer itself.
NEAR_GAP = 15


def hard_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 in {0, 1}: the region the generator paints, from a row's 68 landmarks in
    crop pixels (at `size`); nothing for a row without a face (NaN landmarks)."""
    if not np.isfinite(landmarks).all():
        return np.zeros((size, size), np.float32)
    return (lower_face_mask(landmarks, size) >= HARD_FROM).astype(np.float32)


def bank_rows(lips: np.ndarray, rows: np.ndarray, lip_indices: list[int], count: int) -> np.ndarray:
    """Which frames make a video's reference bank, ascending: `count` of its frames in `rows` (bool, over
    its frames) with a face, spread evenly over the mouth's opening from closed to widest open.
    lips: (frames, LIPS_DIM), NaN without a face."""
    candidates = np.flatnonzero(rows & np.isfinite(lips).all(1))
    if not len(candidates):
        raise ValueError("no frame with a face to take a reference crop from")
    by_opening = candidates[np.argsort(lips_opening(lips[candidates], lip_indices), kind="stable")]
    return np.sort(by_opening[evenly_spaced(len(by_opening), count)])


def reference_bank(lips: np.ndarray, rows: np.ndarray, faces: pa.Array, lip_indices: list[int],
                   count: int, landmarks: np.ndarray) -> References:
    """A video's reference crops (`bank_rows`); faces: its frames' JPEG crops (the frame table's `face`),
    landmarks: theirs (frames, 68, 2), kept with the crops to warp them (`chosen_references`)."""
    frames = bank_rows(lips, rows, lip_indices, count)
    return References(decode_crops(faces, frames), lips[frames], frames, landmarks[frames])


def pick_references(lips: np.ndarray, bank: References, at: np.ndarray | None = None) -> np.ndarray:
    """The reference of each painted frame, as indices into `bank`: the crop whose lips are nearest
    (L2) to the lips asked for, (N, LIPS_DIM) in [0, 1] of the crop. `at`: the frames painted, when they
    are the bank's own video's (training; measuring on its frames): crops within NEAR_GAP frames of
    each are passed over, unless that leaves none. Training, evaluation and rendering all choose here."""
    distance = ((np.asarray(lips, np.float32)[:, None] - bank.lips[None]) ** 2).sum(-1)
    if at is not None:
        near = np.abs(np.asarray(at)[:, None] - bank.frames[None]) < NEAR_GAP
        distance[near & ~near.all(1, keepdims=True)] = np.inf
    return distance.argmin(1)


def chosen_references(lips: np.ndarray, bank: References, landmarks: np.ndarray, lip_indices: list[int],
                      warp: bool, at: np.ndarray | None = None) -> np.ndarray:
    """(N, S, S, 3) uint8: the reference crop of each frame painted, `pick_references`' choice for its
    `lips` (N, LIPS_DIM), warped onto the frame's pose (its `landmarks`, (N, 68, 2) crop pixels) and those
    lips when `warp` (the generator's cgan.warp_references) and the bank kept its landmarks
    (models/networks/reference_warp.py). Rendering, live and evaluation come here; fine-tuning bends each
    item's reference with the same warp (models/training/data.py: FramesWithReferences)."""
    picked = pick_references(lips, bank, at)
    if not warp or bank.landmarks is None:
        return bank.crops[picked]
    return np.stack([warp_reference(bank.crops[k], bank.landmarks[k], points, wanted, lip_indices)
                     for k, points, wanted in zip(picked, landmarks, lips)])


def images(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def frame_input(crops: np.ndarray, landmarks: np.ndarray, references: np.ndarray,
                lips: torch.Tensor | None) -> torch.Tensor:
    """`generator_input` from uint8 crops and references (N, S, S, 3), the crops' landmarks (N, 68, 2)
    in crop pixels and z-scored lips (N, LIPS_DIM): the same values, channels-last (rendering's layout,
    models/rendering/loading.py). lips None: its first FRAME + MASK + REFERENCE channels alone, what a
    render gives the generator beside its lips (UNetGenerator.forward). Made by torch from the NHWC
    arrays as they are: numpy's writes into every seventh float cost ~5x as much."""
    side = crops.shape[1]
    mask = torch.from_numpy(np.stack([hard_mask(points, side) for points in landmarks])[:, None])
    frame = _channels_last(crops).float().div_(127.5).sub_(1.0).mul_(1 - mask)
    parts = [frame, mask, _channels_last(references).float().div_(127.5).sub_(1.0)]
    if lips is not None:
        parts.append(broadcast(lips, side))
    # into a channels-last tensor: left to choose, cat makes an NCHW one (the mask's one channel is both)
    x = torch.empty((len(crops), sum(part.shape[1] for part in parts), side, side),
                    memory_format=torch.channels_last)
    return torch.cat(parts, 1, out=x)


def _channels_last(images: np.ndarray) -> torch.Tensor:
    """(N, S, S, C) uint8 -> (N, C, S, S), the same memory (channels-last)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def broadcast(lips: torch.Tensor, side: int) -> torch.Tensor:
    """(B, L) -> (B, L, side, side): each lip coordinate as a constant channel."""
    return lips[:, :, None, None].expand(-1, -1, side, side)


def generator_input(crop: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor,
                    lips: torch.Tensor) -> torch.Tensor:
    """(B, IN_CHANNELS, S, S): crop (B, 3, S, S) in [-1, 1], mask (B, 1, S, S) in {0, 1} (`hard_mask`),
    reference (B, 3, S, S) in [-1, 1], lips (B, LIPS_DIM) z-scored. The crop is masked here: what is
    under the mask never reaches the generator."""
    side = crop.shape[-1]
    return torch.cat([crop * (1 - mask), mask, reference, broadcast(lips.to(crop.dtype), side)], 1)


def _upsampled(maps: torch.Tensor, box: tuple[slice, ...], mode: str) -> torch.Tensor:
    """`maps` (B, C, s, s) upsampled 2x (`mode`: bilinear or bicubic), the part inside `box` (its rows and
    columns of the 2s x 2s result, explicit slices) alone: what upsampling all of it and cutting gives,
    from the rows and columns within two of the box's (the kernels' reach) plus the box itself."""
    rows, columns = _upsampling_reads(box[2], maps.shape[-2]), _upsampling_reads(box[3], maps.shape[-1])
    top, left = box[2].start - 2 * rows.start, box[3].start - 2 * columns.start
    up = F.interpolate(maps[..., rows, columns], scale_factor=2, mode=mode, align_corners=False)
    return up[..., top : top + box[2].stop - box[2].start, left : left + box[3].stop - box[3].start]


def _upsampling_reads(span: slice, side: int) -> slice:
    """The rows (or columns) of a map of `side` that upsampling it 2x reads for `span` of the result: those
    within two of it, the kernels' reach (`_upsampled`, UNetGenerator._head_over)."""
    return slice(max(span.start // 2 - 2, 0), min((span.stop + 1) // 2 + 2, side))


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm: the same statistics at batch 1 (rendering) as in training, unlike batch norm
    return nn.GroupNorm(min(8, channels // 4), channels)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), _norm(cout), nn.LeakyReLU(0.2, True))


class UNetGenerator(nn.Module):
    """The masked crop, the mask, a reference crop and the lips (`generator_input`) -> (B, 3, S, S) in
    [-1, 1]: the input crop outside the mask, the painted lower face inside it.

    size: the crop's side (128 or 256); base: channels at the finest scale, doubling per halving up to
    max_width. Encoder: log2(size / BOTTLENECK) stride-2 3x3 convolutions; decoder: bilinear
    upsampling, the encoder's map at that scale concatenated, one 3x3 convolution (a second one per
    scale costs 1.7x the time on a CPU). fine: the decoder's channels at full size, where the skin's
    texture is made (None: half of base, at least 8, as generators saved before it was a choice).
    residual: paint reference + change (see above).

    inner: the side its U-Net runs at, when under `size` (a generator grown from a smaller one, `grown`):
    the input is pooled to `inner`, the U-Net paints its change there, and one more level at full size
    (`outer`: the U-Net's last features upsampled, beside the full-size frame, mask and reference) adds
    the change only full size can paint, the teeth's and skin's finest detail, onto the full-size
    reference."""

    def __init__(self, size: int = 128, base: int = 32, lips: int = LIPS_DIM, max_width: int = 256,
                 residual: bool = True, fine: int | None = None, inner: int | None = None):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size}")
        inner = inner or size
        if inner not in SIZES or inner > size or (inner < size and not residual):
            raise ValueError(f"inner {inner}: must be one of {SIZES}, at most size {size}, and residual")
        self.size, self.inner, self.lips, self.residual = size, inner, lips, residual
        depth = int(math.log2(inner // BOTTLENECK))
        widths = [min(base * 2**i, max_width) for i in range(depth)]
        inputs = GIVEN + lips
        self.down = nn.ModuleList(
            _conv(cin, cout, 2) for cin, cout in zip([inputs, *widths[:-1]], widths)
        )
        self.middle = nn.Sequential(_conv(widths[-1] + lips, widths[-1]), _conv(widths[-1], widths[-1]))
        # up[i] takes scale i+1 to scale i, meeting the skip from the encoder's map there
        skips = [GIVEN, *widths[:-1]]
        outs = [fine or max(base // 2, 8), *widths[:-1]]
        self.up = nn.ModuleList(
            _conv(cin + skip, cout)
            for cin, skip, cout in zip([*outs[1:], widths[-1]], skips, outs)
        )
        self.head = nn.Conv2d(outs[0], 3, 3, 1, 1)
        if residual:  # paints the reference itself until trained
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        if inner < size:  # starts as the inner U-Net's painting, upsampled onto the full-size reference
            # no normalisation: computed over the mask's box alone (forward), it is the same as over all
            self.outer = nn.Sequential(nn.Conv2d(outs[0] + skips[0], outs[0], 3, 1, 1),
                                       nn.LeakyReLU(0.2, True))
            self.outer_head = nn.Conv2d(outs[0], 3, 3, 1, 1)
            nn.init.zeros_(self.outer_head.weight)
            nn.init.zeros_(self.outer_head.bias)

    @staticmethod
    def hparams(size: int, base: int, max_width: int = 256, residual: bool = True) -> dict:
        """The constructor's arguments, as saved in a checkpoint (full-size texture at `base` channels)."""
        return {"size": size, "base": base, "lips": LIPS_DIM, "max_width": max_width, "residual": residual,
                "fine": base}

    @staticmethod
    def grown(hparams: dict, state_dict: dict[str, torch.Tensor], size: int) -> tuple[dict, dict]:
        """The hparams and weights of a generator painting `size` px made from a smaller one's: its
        U-Net as it is (`inner`), the full-size level new and adding nothing yet, so it starts painting
        what the smaller one paints, upsampled onto the full-size reference."""
        if hparams.get("inner", hparams["size"]) != hparams["size"]:
            raise ValueError("a generator already grown cannot grow again")
        grown = {**hparams, "size": size, "inner": hparams["size"]}
        weights = UNetGenerator(**grown).state_dict()
        weights.update(state_dict)
        return grown, weights

    def forward(self, x: torch.Tensor, lips: torch.Tensor | None = None) -> torch.Tensor:
        """x: `generator_input`; or its first GIVEN channels alone with `lips` (B, LIPS_DIM) apart, as a
        render gives them (models/networks/cgan.py): the lips are never made into maps (`_first`)."""
        given = x[:, :GIVEN]
        lips = (x[:, GIVEN:, 0, 0] if lips is None else lips).to(x.dtype)
        if self.inner < self.size:
            return self._grown(given, lips)
        frame, mask, reference = given[:, :FRAME], given[:, FRAME : FRAME + MASK], given[:, FRAME + MASK :]
        h = self._features(given, lips)
        painted = (reference + self.head(h)).clamp(-1, 1) if self.residual else torch.tanh(self.head(h))
        return frame * (1 - mask) + painted * mask

    def _grown(self, given: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        """forward, for a generator grown from a smaller one (`inner` < `size`). All at full size runs over
        the masks' box alone (2 px beyond it, the two 3x3 convolutions' reach): the lower face, a third
        of the crop; outside the mask the frame is returned as it is."""
        frame, mask = given[:, :FRAME], given[:, FRAME : FRAME + MASK]
        # the mean of each k x k block: F.interpolate's "area" to `inner`, exactly, and faster in NHWC
        h = self._features(F.avg_pool2d(given, self.size // self.inner), lips)
        box = mask_box(mask, 2)
        # bicubic, as a render warps a crop into the frame: the smaller one's painting as it shows
        change = _upsampled(self._head_over(h, box), box, "bicubic")
        detail = self.outer_head(self.outer(torch.cat([_upsampled(h, box, "bilinear"), given[box]], 1)))
        painted = (given[box][:, FRAME + MASK :] + change + detail).clamp(-1, 1)
        out = frame.clone()
        out[box] = frame[box] * (1 - mask[box]) + painted * mask[box]
        return out

    def _head_over(self, h: torch.Tensor, box: tuple[slice, ...]) -> torch.Tensor:
        """self.head(h) where `_upsampled(., box)` reads it (the box's rows and columns at half size, 2
        beyond), zero elsewhere: the same values there as over all of h, from h's pixels within one more."""
        side = h.shape[-1]

        def reach(span: slice) -> tuple[slice, slice, slice]:  # what it reads, keeps, and where it goes
            wanted = _upsampling_reads(span, side)
            read = slice(max(wanted.start - 1, 0), min(wanted.stop + 1, side))
            return read, slice(wanted.start - read.start, wanted.stop - read.start), wanted

        (rows, keep_rows, at_rows), (columns, keep_columns, at_columns) = reach(box[2]), reach(box[3])
        out = h.new_zeros((h.shape[0], self.head.out_channels, side, side))
        out[:, :, at_rows, at_columns] = self.head(h[:, :, rows, columns])[:, :, keep_rows, keep_columns]
        return out

    def _first(self, given: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        """The encoder's first level on the given channels and the lips as constant maps, without the
        maps: its convolution is linear, so the lips add, at each output pixel, their weights summed over
        the taps that fall inside the image. Those sums take four values (a stride-2 3x3 convolution
        padded by 1 over an even side: the first row and column miss a tap), computed on a 4 x 4 canvas."""
        conv, rest = self.down[0][0], self.down[0][1:]
        if (conv.stride, conv.padding, conv.kernel_size) != ((2, 2), (1, 1), (3, 3)) or given.shape[-1] % 2:
            raise ValueError("_first: written for a stride-2 3x3 convolution padded by 1, over an even side")
        h = F.conv2d(given, conv.weight[:, :GIVEN], conv.bias, 2, 1)
        canvas = F.conv2d(broadcast(lips, 4), conv.weight[:, GIVEN:], None, 2, 1)  # (B, C, 2, 2)
        where = torch.ones(h.shape[-1], dtype=torch.long, device=h.device)
        where[0] = 0
        return rest(h + canvas[:, :, where][:, :, :, where])

    def _features(self, given: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        """The U-Net's decoder features at its own side (`inner`), from the given channels at that side
        and the lips (B, LIPS_DIM)."""
        skips = [given]
        h = self._first(given, lips)
        for block in self.down[1:]:
            skips.append(h)
            h = block(h)
        h = self.middle(torch.cat([h, broadcast(lips, h.shape[-1])], 1))
        for block, skip in zip(reversed(self.up), reversed(skips)):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        return h
