"""reenact's invisible watermark, read back after re-encoding, scaling, cropping and trimming
(ARCHITECTURE.md, Provenance: the mark).

The mark lives in the coordinates of the aligned face (tasks/rows/crop.py: TEMPLATE), which the
pipeline computes anyway to composite the generated face, so cropping and scaling the video do not
move it: a reader finds the face with dlib, aligns it the same way and looks in the same place.

- Payload (PAYLOAD_BITS = 56): a fixed 16-bit reenact TAG, a 32-bit render id (the manifest records
  it as a `c2pa.soft-binding` assertion, algorithm ALG) and a CRC-8 of the id.
- Pattern: the aligned crop is cut into GRID x GRID cells; the cells of an ellipse over the face
  are dealt out to the payload bits (`bit_cells`: every bit gets a cell in each band of the face)
  and each gets a keyed sign (spread spectrum). The cell values (sign x bit) are interpolated to the
  crop and band-passed to mid frequencies, then scaled to AMPLITUDE grey levels (RMS inside the
  ellipse).
- In time: frame at t seconds carries `sin(2 pi t / PERIOD_S)` times the pattern. A face aligned to
  the crop is nearly the same picture from frame to frame, so a mark fixed in the crop would hide
  under the face's own texture; one that swings slowly in time is told apart from it by the reader.
- Reading: BURSTS windows of PERIOD_S spread over the clip, frames at READ_FPS; each frame's faces
  (MAX_FACES, followed as tracks: a panel shows an unmarked face beside the marked one) are aligned
  onto a CANVAS-px crop, band-passed and averaged per cell; per window the cell's mean is removed and
  the rest fitted by a sine and cosine of the period; the fits, weighted by each cell's residual noise
  (floored: NOISE_FLOOR), are summed per bit. All bits share one phase (unknown after trimming):
  the main axis of the bits' fits gives it, the TAG its sign. Found: the TAG's correlation reaches
  MIN_TAG_Z standard deviations and at most MAX_TAG_ERRORS of its bits read wrong; the id then counts
  when every bit of it and its CRC reads at least MIN_ID_Z clearly and the CRC holds.
"""

from __future__ import annotations

import functools
import math
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from tasks.rows import landmarks as lm
from tasks.rows.crop import TEMPLATE, anchors, similarity
from tasks.rows.decode import DecodeError, probe

ALG = "org.reenact.facemark.1"
KEY = 0x5EE_AC7  # seeds the cell shuffle and signs: a reader needs the same
TAG = 0xA5E3
TAG_BITS, ID_BITS, CRC_BITS = 16, 32, 8
PAYLOAD_BITS = TAG_BITS + ID_BITS + CRC_BITS
GRID = 32
AMPLITUDE = 2.8  # grey levels, RMS over the ellipse at the peak of the swing
PERIOD_S = 1.0
# The face ellipse in crop units (TEMPLATE puts the eyes at y 0.30, the chin near 0.83).
ELLIPSE = (0.5, 0.5, 0.42, 0.46)  # centre x, y, radius x, y
CANVAS = 128
BURSTS, READ_FPS = 4, 30.0
MIN_ID_Z = 2.0  # every bit of the id and its CRC must read at least this clearly for the id to count
MIN_TAG_Z = 6.0
MAX_TAG_ERRORS = 2  # of the TAG's 16 bits, read wrong in a reading that still counts as found
NOISE_FLOOR = 0.5  # of the median cell's noise: the least a cell's noise is taken to be
# A frame wider than this is searched for its face at this width (landmarks at full size).
DETECT_WIDTH = 640
MAX_FACES = 2  # faces followed per frame: a panel shows the target beside the marked composite
MIN_FRAMES = 4  # frames with a face that a reading needs


def new_mark_id() -> int:
    """A fresh 32-bit render id."""
    return secrets.randbits(ID_BITS)


def mark_id_hex(mark_id: int) -> str:
    """The id as the manifest's soft binding and `reenact verify` write it: 8 hex digits."""
    return f"{mark_id:08x}"


def crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of the id's 4 bytes, big-endian."""
    crc = 0
    for byte in value.to_bytes(4, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def payload_bits(mark_id: int) -> np.ndarray:
    """(PAYLOAD_BITS,) of 0/1: TAG, the id, its CRC-8, most significant bit first."""
    word = (TAG << (ID_BITS + CRC_BITS)) | (mark_id << CRC_BITS) | crc8(mark_id)
    return np.array([(word >> i) & 1 for i in range(PAYLOAD_BITS - 1, -1, -1)], np.uint8)


def parse_payload(bits: np.ndarray) -> tuple[bool, int | None]:
    """(TAG matches, the id when its CRC holds else None) of PAYLOAD_BITS 0/1 values."""
    word = int("".join(str(int(b)) for b in bits), 2)
    tag, mark_id, crc = word >> (ID_BITS + CRC_BITS), (word >> CRC_BITS) & (2**ID_BITS - 1), word & 0xFF
    return tag == TAG, mark_id if crc8(mark_id) == crc else None


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


def _shaped(values: np.ndarray, size: int) -> np.ndarray:
    """(GRID, GRID) cell values as a size-px image: interpolated, then band-passed to mid frequencies."""
    image = cv2.resize(values.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image -= cv2.GaussianBlur(image, (0, 0), 2.0 * size / GRID)
    return image


@functools.lru_cache(maxsize=8)
def pattern(mark_id: int, size: int) -> np.ndarray:
    """(size, size) float32: the mark of `mark_id` on a size-px aligned crop, at full swing."""
    cells = bit_cells()
    bits = payload_bits(mark_id).astype(np.float32) * 2 - 1
    image = _shaped(cells.signs * bits[np.maximum(cells.owner, 0)], size)
    inside = cv2.resize((cells.owner >= 0).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    image *= AMPLITUDE / math.sqrt(float((image[inside > 0] ** 2).mean()))
    image.setflags(write=False)
    return image


def cell_means(crop: np.ndarray) -> np.ndarray:
    """(GRID, GRID): what the reader takes from a CANVAS-px aligned grey crop: the mark's band, per cell."""
    cell = CANVAS / GRID
    band = cv2.GaussianBlur(crop, (0, 0), 0.35 * cell) - cv2.GaussianBlur(crop, (0, 0), 1.5 * cell)
    return cv2.resize(band, (GRID, GRID), interpolation=cv2.INTER_AREA)


@functools.cache
def bit_responses() -> np.ndarray:
    """(GRID * GRID, PAYLOAD_BITS): the cell means the reader sees from each bit's share of the pattern
    alone. Interpolation and band-pass spill every cell into its neighbours, which belong to other
    bits; the reader undoes that spill by least squares over these responses."""
    cells = bit_cells()
    return np.stack(
        [cell_means(_shaped(np.where(cells.owner == k, cells.signs, 0), CANVAS)).ravel()
         for k in range(PAYLOAD_BITS)], 1
    ).astype(np.float64)


def swing(seconds: float | np.ndarray) -> float | np.ndarray:
    """How much of the pattern the frame at `seconds` carries: a sine of period PERIOD_S."""
    return np.sin(2 * np.pi * np.asarray(seconds) / PERIOD_S)


@dataclass
class MarkReading:
    """What `read_mark` found. `found`: the reenact TAG is there; `mark_id`: the id, when its CRC holds."""

    found: bool
    mark_id: int | None
    tag_z: float  # the TAG's correlation in standard deviations of unmarked footage's
    frames: int  # frames with a face that were read
    error: str = ""

    @property
    def id_hex(self) -> str:
        return "" if self.mark_id is None else mark_id_hex(self.mark_id)

    def describe(self) -> str:
        if self.error:
            return f"watermark not read: {self.error}"
        if not self.found:
            return f"no reenact watermark ({self.frames} frames with a face read)"
        named = f"id {self.id_hex}" if self.mark_id is not None else "id unreadable"
        return f"reenact watermark found: {named} (tag {self.tag_z:.1f} sigma, {self.frames} frames)"


@dataclass
class Face:
    """One face of a frame as the reader sees it: where it is, and its cells."""

    centre: np.ndarray  # (x, y) in frame pixels
    width: float
    cells: np.ndarray  # (GRID, GRID) band-passed cell means of the aligned face
    whole: np.ndarray  # (GRID, GRID) bool: the cell lies wholly inside the frame


def faces_in(grey: np.ndarray, most: int = MAX_FACES) -> list[Face]:
    """The `most` largest faces of a grey frame, each aligned as the crop is (tasks/rows/crop.py)."""
    import dlib

    scale = min(1.0, DETECT_WIDTH / grey.shape[1])
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    found = []
    for r in (lm.detect(small) or lm.detect(small, 1))[:most]:
        box = dlib.rectangle(*(round(v / scale) for v in (r.left(), r.top(), r.right(), r.bottom())))
        transform = similarity(anchors(lm.shape(grey, box)), TEMPLATE * CANVAS)
        crop = cv2.warpAffine(grey.astype(np.float32), transform, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(np.ones(grey.shape, np.float32), transform, (CANVAS, CANVAS))
        centre = np.array([(box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2])
        means = cell_means(crop)
        whole = cv2.resize(inside, (GRID, GRID), interpolation=cv2.INTER_AREA) > 0.999
        found.append(Face(centre, float(box.width()), means, whole))
    return found


class Track:
    """The frames of one face followed through the read (a panel shows two: one marked)."""

    def __init__(self, face: Face):
        self.centre, self.width = face.centre, face.width
        self.seconds, self.cells, self.whole, self.burst = [], [], [], []

    def near(self, face: Face) -> float:
        return float(np.linalg.norm(face.centre - self.centre)) / max(self.width, 1.0)

    def add(self, face: Face, seconds: float, burst: int) -> None:
        self.centre, self.width = face.centre, face.width
        self.seconds.append(seconds)
        self.cells.append(face.cells)
        self.whole.append(face.whole)
        self.burst.append(burst)


def _grey_frames(path: Path, windows: list[tuple[float, float]], width: int, height: int):
    """(seconds, grey frame) at READ_FPS inside `windows`, from one ffmpeg run over the file."""
    command = (
        ffmpeg.input(str(path))
        .video.filter("fps", fps=READ_FPS)
        .output("pipe:", format="rawvideo", pix_fmt="gray")
        .global_args("-nostdin", "-loglevel", "error")
        .compile()
    )
    # stderr unread: a damaged file's stream of decoding errors must not fill a pipe and stall ffmpeg
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    size, index = width * height, 0
    try:
        while len(buffer := process.stdout.read(size)) == size:
            seconds = index / READ_FPS
            index += 1
            if any(lo <= seconds < hi for lo, hi in windows):
                yield seconds, np.frombuffer(buffer, np.uint8).reshape(height, width)
            elif seconds >= windows[-1][1]:
                break
    finally:
        process.kill()
        process.wait()


def windows_of(duration: float) -> list[tuple[float, float]]:
    """Up to BURSTS windows of one PERIOD_S, apart and spread evenly over a clip of `duration` s."""
    count = min(BURSTS, int(duration // PERIOD_S))
    if count < 2:
        return [(0.0, duration + 1e-6)]
    starts = np.linspace(0.0, duration - PERIOD_S, count)
    return [(float(s), float(s) + PERIOD_S) for s in starts]


def read_mark(path: str | Path) -> MarkReading:
    """Look for reenact's watermark in the video at `path` (any file ffmpeg reads)."""
    path = Path(path)
    try:
        info = probe(path)
    except DecodeError as exc:
        return MarkReading(False, None, 0.0, 0, error=str(exc))
    if not info.has_video:
        return MarkReading(False, None, 0.0, 0, error=f"{path}: has no video stream")
    windows = windows_of(info.duration)
    tracks: list[Track] = []
    for t, grey in _grey_frames(path, windows, info.width, info.height):
        burst = next(i for i, (lo, hi) in enumerate(windows) if lo <= t < hi)
        for face in faces_in(grey):
            nearest = min(tracks, key=lambda track: track.near(face), default=None)
            if nearest is None or nearest.near(face) > 1.0:
                tracks.append(nearest := Track(face))
            nearest.add(face, t, burst)
    readings = [
        decide(np.array(k.seconds), np.array(k.cells), np.array(k.whole).all(0), np.array(k.burst))
        for k in tracks
        if len(k.seconds) >= MIN_FRAMES
    ]
    if not readings:
        return MarkReading(False, None, 0.0, max((len(k.seconds) for k in tracks), default=0))
    return max(readings, key=lambda r: (r.found, r.tag_z))


def bit_fits(seconds: np.ndarray, cells: np.ndarray, usable: np.ndarray, burst: np.ndarray) -> np.ndarray:
    """(PAYLOAD_BITS, 2): each bit's swing as (sine, cosine) amplitudes, in standard deviations of
    the noise, from frames at `seconds` with (n, GRID, GRID) `cells`, their `burst` windows."""
    phase = 2 * np.pi * seconds / PERIOD_S
    design = np.stack([np.sin(phase), np.cos(phase)], 1)
    values = cells.reshape(len(cells), -1).astype(np.float64)
    for b in np.unique(burst):  # each window's own mean goes: the face itself, and slow changes
        values[burst == b] -= values[burst == b].mean(0)
        design[burst == b] -= design[burst == b].mean(0)
    fit, *_ = np.linalg.lstsq(design, values, rcond=None)  # (2, cells)
    dof = max(len(values) - len(np.unique(burst)) - 2, 1)
    noise = ((values - design @ fit) ** 2).sum(0) / dof
    # A flat or clipped patch (a white wall, a saturated cheek) barely moves, and holds no mark either:
    # its weight is capped, or one such cell would speak for its whole bit.
    noise = np.maximum(noise, NOISE_FLOOR * np.median(noise) + 1e-6)
    spread = np.linalg.inv(design.T @ design)  # covariance of a fit per unit noise
    # Weighted least squares of the cells' fits on the bits' responses: each bit's amplitude with the
    # spill of its neighbours' taken out, and its standard deviation under the cells' noise.
    weights = np.where(usable.ravel(), 1.0 / noise, 0.0)
    responses = bit_responses()
    gram = responses.T @ (responses * weights[:, None])
    seen = np.diag(gram) > 1e-9 * np.diag(gram).max()  # a bit whose cells all fell outside the frame: 0
    amplitudes = np.zeros((PAYLOAD_BITS, 2))
    deviation = np.ones(PAYLOAD_BITS)
    inverse = np.linalg.inv(gram[np.ix_(seen, seen)])
    amplitudes[seen] = inverse @ (responses[:, seen].T @ (weights[:, None] * fit.T))
    deviation[seen] = np.sqrt(np.diag(inverse))
    return amplitudes / (deviation[:, None] * np.sqrt(np.diag(spread))[None, :])


def decide(seconds: np.ndarray, cells: np.ndarray, usable: np.ndarray, burst: np.ndarray) -> MarkReading:
    fits = bit_fits(seconds, cells, usable, burst)
    # All bits swing in one phase: the main axis of their fits. Its sign comes from the TAG.
    _, _, axes = np.linalg.svd(fits, full_matrices=False)
    values = fits @ axes[0]
    tag = payload_bits(0)[:TAG_BITS].astype(np.float64) * 2 - 1
    tag_z = float(values[:TAG_BITS] @ tag / math.sqrt(TAG_BITS))
    if tag_z < 0:
        values, tag_z = -values, -tag_z
    bits = (values > 0).astype(np.uint8)
    wrong = int((bits[:TAG_BITS] != payload_bits(0)[:TAG_BITS]).sum())
    found = wrong <= MAX_TAG_ERRORS and tag_z >= MIN_TAG_Z
    clear = bool(np.abs(values[TAG_BITS:]).min() >= MIN_ID_Z)  # a CRC-8 alone passes 1 in 256 bad reads
    mark_id = parse_payload(bits)[1] if clear else None
    return MarkReading(found, mark_id if found else None, tag_z, len(seconds))
