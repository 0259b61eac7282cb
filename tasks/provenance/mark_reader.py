"""Reading reenact's watermark (tasks/provenance/watermark.py: the payload, the pattern, the swing) back
from a video, after re-encoding, scaling, cropping and trimming (ARCHITECTURE.md, Provenance: the mark).

BURSTS windows of WINDOW_S spread over the clip, frames at READ_FPS. Each frame's faces (MAX_FACES,
followed as tracks: a panel shows an unmarked face beside the marked one) are aligned onto a CANVAS-px
crop, band-passed and averaged per cell. Each cell less its mean over one period around each frame
(`high_passed`) is fitted by a sine and cosine of the period, frames weighted by how little they stray
(`frame_weights`: a blink speaks less); the fits, weighted by each cell's residual noise (floored:
NOISE_FLOOR), are solved per bit. All bits share one phase (unknown after trimming): the main axis of
the bits' fits gives it, the TAG its sign, the quadrature axis the noise's real spread (the fits' own
deviations assume a noise white in time, which a face is not).

Found: the TAG's correlation reaches MIN_TAG_Z standard deviations and at most MAX_TAG_ERRORS of its
bits read wrong. The id then counts when its CRC-16 holds (watermark.py: `decode_id`).
"""

from __future__ import annotations

import functools
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from tasks.provenance.watermark import (
    GRID,
    PAYLOAD_BITS,
    PERIOD_S,
    TAG_BITS,
    bit_cells,
    decode_id,
    mark_id_hex,
    payload_bits,
    shaped,
)
from tasks.rows import landmarks as lm
from tasks.rows.crop import TEMPLATE, anchors, similarity
from tasks.rows.decode import DecodeError, probe

WINDOW_S = 1.0  # a reading window: whole periods, short enough that the face's own slow change is its mean
CANVAS = 128
BURSTS, READ_FPS = 4, 30.0
MIN_TAG_Z = 6.0
MAX_TAG_ERRORS = 2  # of the TAG's 16 bits, read wrong in a reading that still counts as found
NOISE_FLOOR = 0.5  # of the median cell's noise: the least a cell's noise is taken to be
FRAME_FLOOR = 0.25  # of the median frame's stray: the least a frame's is taken to be
# A frame wider than this is searched for its face at this width (landmarks at full size).
DETECT_WIDTH = 640
MAX_FACES = 2  # faces followed per frame: a panel shows the target beside the marked composite
MIN_FRAMES = 4  # frames with a face that a reading needs


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
        [cell_means(shaped(np.where(cells.owner == k, cells.signs, 0), CANVAS)).ravel()
         for k in range(PAYLOAD_BITS)], 1
    ).astype(np.float64)


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
    """Up to BURSTS windows of WINDOW_S, apart and spread evenly over a clip of `duration` s."""
    count = min(BURSTS, int(duration // WINDOW_S))
    if count < 2:
        return [(0.0, duration + 1e-6)]
    starts = np.linspace(0.0, duration - WINDOW_S, count)
    return [(float(s), float(s) + WINDOW_S) for s in starts]


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


def high_passed(seconds: np.ndarray, values: np.ndarray, burst: np.ndarray) -> np.ndarray:
    """`values` (n, ...) of frames at `seconds` less their mean over one PERIOD_S around each frame, in
    its own `burst` window: the face's own slow change goes (its power is mostly under 1.5 Hz), and a
    whole period of the swing averages to nothing, so the mark stays."""
    near = (np.abs(seconds[:, None] - seconds[None, :]) <= PERIOD_S / 2 + 1e-6) & (burst[:, None] == burst)
    return values - (near / near.sum(1, keepdims=True)) @ values


def frame_weights(residuals: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(n,): each frame's weight, the inverse of how far its (n, cells) `residuals` stray against the
    cells' `noise`: a blink or a quick turn of the head speaks less (floored at FRAME_FLOOR of the
    median frame's, so that no one still frame speaks for all)."""
    stray = np.median(residuals**2 / noise, 1)
    return 1.0 / np.maximum(stray, FRAME_FLOOR * np.median(stray) + 1e-12)


def _cell_noise(residuals: np.ndarray, dof: int) -> np.ndarray:
    noise = (residuals**2).sum(0) / dof
    # A flat or clipped patch (a white wall, a saturated cheek) barely moves, and holds no mark either:
    # its weight is capped, or one such cell would speak for its whole bit.
    return np.maximum(noise, NOISE_FLOOR * np.median(noise) + 1e-6)


def bit_fits(seconds: np.ndarray, cells: np.ndarray, usable: np.ndarray, burst: np.ndarray) -> np.ndarray:
    """(PAYLOAD_BITS, 2): each bit's swing as (sine, cosine) amplitudes, in (model) standard deviations
    of the noise, from frames at `seconds` with (n, GRID, GRID) `cells`, their `burst` windows."""
    phase = 2 * np.pi * seconds / PERIOD_S
    design = high_passed(seconds, np.stack([np.sin(phase), np.cos(phase)], 1), burst)
    values = high_passed(seconds, cells.reshape(len(cells), -1).astype(np.float64), burst)
    dof = max(len(values) - 2, 1)
    inside = usable.ravel() & (bit_cells().owner.ravel() >= 0)
    inside = inside if inside.any() else bit_cells().owner.ravel() >= 0  # none whole: weigh by all
    fit, *_ = np.linalg.lstsq(design, values, rcond=None)  # (2, cells)
    residuals = values - design @ fit
    root = np.sqrt(frame_weights(residuals[:, inside], _cell_noise(residuals, dof)[inside]))[:, None]
    design, values = design * root, values * root  # weighted least squares in time
    fit, *_ = np.linalg.lstsq(design, values, rcond=None)
    noise = _cell_noise(values - design @ fit, dof)
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
    # The fits' noise is not white in time (a face's change is smooth), so their model deviations are
    # too small; the quadrature axis holds noise alone, and its spread over the bits is the real one.
    values = fits @ axes[0] / max(float(np.sqrt(np.mean((fits @ axes[1]) ** 2))), 1e-9)
    tag = payload_bits(0)[:TAG_BITS].astype(np.float64) * 2 - 1
    tag_z = float(values[:TAG_BITS] @ tag / math.sqrt(TAG_BITS))
    if tag_z < 0:
        values, tag_z = -values, -tag_z
    wrong = int(((values[:TAG_BITS] > 0) != payload_bits(0)[:TAG_BITS]).sum())
    found = wrong <= MAX_TAG_ERRORS and tag_z >= MIN_TAG_Z
    return MarkReading(found, decode_id(values[TAG_BITS:]) if found else None, tag_z, len(seconds))
