"""reenact's invisible watermark, to be read back after re-encoding, scaling, cropping and trimming
(ARCHITECTURE.md, Provenance: the mark).

The mark lives in the coordinates of the aligned face (tasks/rows/crop.py: TEMPLATE), which the
pipeline computes anyway to composite the generated face, so cropping and scaling the video do not
move it: a reader finds the face with dlib, aligns it the same way and looks in the same place.

- Payload (PAYLOAD_BITS = 64): a fixed 16-bit reenact TAG, a 32-bit render id (the manifest records
  it as a `c2pa.soft-binding` assertion, algorithm ALG) and a CRC-16 of the id.
- Pattern: the aligned crop is cut into GRID x GRID cells; the cells of an ellipse over the face
  are dealt out to the payload bits (`bit_cells`: every bit gets a cell in each band of the face)
  and each gets a keyed sign (spread spectrum). The cell values (sign x bit) are interpolated to the
  crop and band-passed to mid frequencies, then scaled to AMPLITUDE grey levels (RMS inside the
  ellipse).
- In time: frame at t seconds carries `swing(t)` times the pattern: a sine of PERIOD_S, cut flat at
  its peaks. A face aligned to the crop is nearly the same picture from frame to frame, so a mark
  fixed in the crop would hide under the face's own texture; one that swings in time is told apart
  from it by the reader. How fast: a real head's motion moves its texture through the aligned crop,
  and that change is strongest at the slowest rates (measured on real talking heads, per cell: ~5x
  less power at 3 Hz than at 1 Hz, ~20x less at 5 Hz), while H.264 at CRF 28 smooths away a swing of
  7.5 Hz. 3 Hz sits between.

Reading it back: tasks/provenance/mark_reader.py. The id counts when its CRC-16 holds, as read or with
some of its FLIP_BITS least clear bits flipped (a soft-decision search, `decode_id`): never more than
2**FLIP_BITS candidates, so a wrong id passes the CRC about once in 65536 / 2**FLIP_BITS unreadable reads.
"""

from __future__ import annotations

import binascii
import functools
import itertools
import math
import secrets
from dataclasses import dataclass

import cv2
import numpy as np

ALG = "org.reenact.facemark.2"
KEY = 0x5EE_AC7  # seeds the cell shuffle and signs: a reader needs the same
TAG = 0xA5E3
TAG_BITS, ID_BITS, CRC_BITS = 16, 32, 16
PAYLOAD_BITS = TAG_BITS + ID_BITS + CRC_BITS
GRID = 32
AMPLITUDE = 2.8  # grey levels, RMS over the ellipse at the peak of the swing
PERIOD_S = 1 / 3  # the swing: 3 Hz
SWING_GAIN = 1.5  # the sine's height before it is cut flat at +-1 (`swing`)
# The face ellipse in crop units (TEMPLATE puts the eyes at y 0.30, the chin near 0.83).
ELLIPSE = (0.5, 0.5, 0.42, 0.46)  # centre x, y, radius x, y
FLIP_BITS = 6  # of the id and its CRC, the least clear bits the decoder may flip
MAX_FLIP_Z = 3.0  # a bit read this clearly is never flipped


def new_mark_id() -> int:
    """A fresh 32-bit render id."""
    return secrets.randbits(ID_BITS)


def mark_id_hex(mark_id: int) -> str:
    """The id as the manifest's soft binding and `reenact verify` write it: 8 hex digits."""
    return f"{mark_id:08x}"


def crc16(value: int) -> int:
    """CRC-16/CCITT (polynomial 0x1021, initial 0xFFFF) of the id's 4 bytes, big-endian."""
    return binascii.crc_hqx(value.to_bytes(4, "big"), 0xFFFF)


def payload_bits(mark_id: int) -> np.ndarray:
    """(PAYLOAD_BITS,) of 0/1: TAG, the id, its CRC-16, most significant bit first."""
    word = (TAG << (ID_BITS + CRC_BITS)) | (mark_id << CRC_BITS) | crc16(mark_id)
    return np.array([(word >> i) & 1 for i in range(PAYLOAD_BITS - 1, -1, -1)], np.uint8)


def parse_payload(bits: np.ndarray) -> tuple[bool, int | None]:
    """(TAG matches, the id when its CRC holds else None) of PAYLOAD_BITS 0/1 values."""
    word = int("".join(str(int(b)) for b in bits), 2)
    tag, mark_id = word >> (ID_BITS + CRC_BITS), (word >> CRC_BITS) & (2**ID_BITS - 1)
    return tag == TAG, mark_id if crc16(mark_id) == word & (2**CRC_BITS - 1) else None


@dataclass(frozen=True)
class BitCells:
    owner: np.ndarray  # (GRID, GRID) int: the payload bit of each cell, -1 outside the ellipse
    signs: np.ndarray  # (GRID, GRID) float32: +-1 inside the ellipse, 0 outside


@functools.cache
def bit_cells() -> BitCells:
    """The keyed cells of each payload bit and their signs. The ellipse's cells, read row by row
    (snaking), are dealt out in runs of PAYLOAD_BITS, each run to the bits in a keyed order: every bit
    gets one cell in every band of the face (eyes, nose, mouth, chin), so no bit rests on the mouth
    alone, which speech keeps moving."""
    rng = np.random.default_rng(KEY)
    y, x = (np.mgrid[0:GRID, 0:GRID] + 0.5) / GRID
    cx, cy, rx, ry = ELLIPSE
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    snake = np.arange(GRID * GRID).reshape(GRID, GRID)
    snake[1::2] = snake[1::2, ::-1]
    cells = [c for c in snake.ravel() if inside.ravel()[c]]
    owner = np.full(GRID * GRID, -1)
    for start in range(0, len(cells), PAYLOAD_BITS):
        run = cells[start : start + PAYLOAD_BITS]
        owner[run] = rng.permutation(PAYLOAD_BITS)[: len(run)]
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), GRID * GRID) * inside.ravel()
    return BitCells(owner.reshape(GRID, GRID), signs.reshape(GRID, GRID).astype(np.float32))


def shaped(values: np.ndarray, size: int) -> np.ndarray:
    """(GRID, GRID) cell values as a size-px image: interpolated, then band-passed to mid frequencies."""
    image = cv2.resize(values.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image -= cv2.GaussianBlur(image, (0, 0), 2.0 * size / GRID)
    return image


@functools.lru_cache(maxsize=8)
def pattern(mark_id: int, size: int) -> np.ndarray:
    """(size, size) float32: the mark of `mark_id` on a size-px aligned crop, at full swing."""
    cells = bit_cells()
    bits = payload_bits(mark_id).astype(np.float32) * 2 - 1
    image = shaped(cells.signs * bits[np.maximum(cells.owner, 0)], size)
    inside = cv2.resize((cells.owner >= 0).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    image *= AMPLITUDE / math.sqrt(float((image[inside > 0] ** 2).mean()))
    image.setflags(write=False)
    return image


def swing(seconds: float | np.ndarray) -> float | np.ndarray:
    """How much of the pattern the frame at `seconds` carries: a sine of period PERIOD_S, SWING_GAIN
    times as tall and cut flat at +-1. The peak (the worst frame's PSNR) stays; the fundamental the
    reader fits grows 1.17x, and H.264 at CRF 28 keeps the steeper steps better (measured: the tag
    1.4-2.2x as strong after crop, 360 p, excerpt and CRF 28 on real moving heads)."""
    return np.clip(SWING_GAIN * np.sin(2 * np.pi * np.asarray(seconds) / PERIOD_S), -1.0, 1.0)


def decode_id(values: np.ndarray) -> int | None:
    """The id from the soft readings (in standard deviations) of its ID_BITS + CRC_BITS bits: the hard
    decision when its CRC holds, else the likeliest of the words that flip some of the FLIP_BITS least
    clear bits (under MAX_FLIP_Z) whose CRC holds; None when none does."""
    bits = (values > 0).astype(np.uint8)
    weak = [i for i in np.argsort(np.abs(values))[:FLIP_BITS] if abs(values[i]) < MAX_FLIP_Z]
    flips = [c for n in range(len(weak) + 1) for c in itertools.combinations(weak, n)]
    for flip in sorted(flips, key=lambda c: float(np.abs(values[list(c)]).sum())):
        word = bits.copy()
        word[list(flip)] ^= 1
        _, mark_id = parse_payload(np.concatenate([payload_bits(0)[:TAG_BITS], word]))
        if mark_id is not None:
            return mark_id
    return None
