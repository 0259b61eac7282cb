"""Lip statistics and what rendering does to predicted lips before the generator (ARCHITECTURE.md, Rendering):
map them onto the target speaker's lip statistics (the paper's affine alignment across speakers),
smooth them over time, pull lips unlike any the generator saw back onto its training
distribution (the paper's Fig. 7 failure: such lips give broken faces), and close the mouth where the
speech is silent (the silence gate: `render.silence_db`). `speaker_lips` does all of it to a whole clip.

Statistics are models.records.LipsStats, as the generator's artifact carries them per video;
`lips_moments` is what makes them from lips. Here, below rendering, because training uses both: the
datasets take each video's statistics, and train_lstm measures held-out speakers through what a render
does to their lips (models/training/speakers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from models.records import LipsStats, Shape
from tasks.config.params import Params
from tasks.rows.landmarks import INNER_BOTTOM, INNER_TOP, lips_opening

# Lips directions in which a clip varies less than this share of the target's mean variance are
# noise, not speech: whitening must not blow them up to the target's scale.
RIDGE = 0.01
# A clip whose lips vary less than this share of the corpus's variance is mostly silence: its
# statistics lean on the corpus's, so a silent clip keeps a closed mouth instead of the mean one.
SHRINK = 0.05
# A speaker's closed mouth: their openings at or below this quantile of their own (the lowest decile).
CLOSED_QUANTILE = 0.1
# Log energy (natural log of a window's sum of squares, tasks/rows/features.py) per decibel.
NATS_PER_DB = np.log(10) / 10
# Whatever the clip, a window quieter than this is silence: 80 dB below a full-scale sine's log energy
# in the 33 ms window (ln 264 at 16 kHz), where digital silence and dither lie.
SILENCE_FLOOR = np.log(264.0) - 80 * NATS_PER_DB
# A clip's loud level: this percentile of its frames' log energy.
LOUD_PERCENTILE = 95
# The silence gate opens and closes over this many frames (a centred moving average): ~0.17 s at 30 fps.
GATE_WINDOW = 5


def lips_moments(lips: np.ndarray) -> LipsStats:
    """The statistics of (T, LIPS_DIM) lips (a covariance of zeros for fewer than 2 frames)."""
    lips = np.asarray(lips, np.float64)
    cov = np.cov(lips, rowvar=False) if len(lips) > 1 else np.zeros((lips.shape[1], lips.shape[1]))
    return LipsStats(lips.mean(0), cov, len(lips))


class MomentSums:
    """lips_moments over lips that arrive in chunks: sums and cross products, nothing else kept."""

    def __init__(self, dim: int):
        self.sums, self.squares, self.frames = np.zeros(dim), np.zeros((dim, dim)), 0

    def add(self, lips: np.ndarray) -> None:
        x = np.asarray(lips, np.float64)
        self.sums += x.sum(0)
        self.squares += x.T @ x
        self.frames += len(x)

    def moments(self) -> LipsStats:
        n = self.frames
        mean = self.sums / max(n, 1)
        return LipsStats(mean, (self.squares - n * np.outer(mean, mean)) / max(n - 1, 1), n)


def pooled_stats(stats: dict[str, LipsStats]) -> LipsStats:
    """The lip statistics of several videos together (the generator's `lips_stats`): the corpus's."""
    parts = list(stats.values())
    n = sum(s.frames for s in parts)
    mean = sum(s.frames * s.mean for s in parts) / n
    scatter = sum((s.frames - 1) * s.cov + s.frames * np.outer(s.mean - mean, s.mean - mean) for s in parts)
    return LipsStats(mean, scatter / max(n - 1, 1), n)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def align_lips(
    lips: np.ndarray, target: LipsStats, source: LipsStats | None = None, prior: LipsStats | None = None
) -> np.ndarray:
    """(T, LIPS_DIM) lips -> the same motion in the target video's lip statistics.

    The map x -> mu_t + A (x - mu_s) takes a Gaussian of the source's mean and covariance onto the
    target's with the least displacement (A symmetric: the optimal transport map), so opening stays
    opening and width stays width. `source` defaults to the lips' own statistics; with `prior` (the
    corpus's), a clip that barely moves borrows its statistics from the prior in proportion. A small
    ridge keeps directions in which the source does not move from being amplified. Never NaN; a
    constant input maps to the target mean (without a prior) or to the target's counterpart of the
    prior's shape at that point (with one); output clipped to [0, 1].
    """
    lips = np.asarray(lips, np.float64)
    source = lips_moments(lips) if source is None else source
    mean_s, cov_s = source.mean, source.cov
    if prior is not None:
        mean_p, cov_p = prior.mean, prior.cov
        weight = np.trace(cov_s) / (np.trace(cov_s) + SHRINK * np.trace(cov_p) + 1e-30)
        mean_s = weight * mean_s + (1 - weight) * mean_p
        cov_s = weight * cov_s + (1 - weight) * cov_p
    mean_t, cov_t = target.mean, target.cov
    cov_s = cov_s + RIDGE * np.trace(cov_t) / len(cov_t) * np.eye(len(cov_t))
    root = _sqrtm(cov_s)
    inverse_root = np.linalg.pinv(root, hermitian=True)
    transport = inverse_root @ _sqrtm(root @ cov_t @ root) @ inverse_root
    aligned = mean_t + (lips - mean_s) @ transport.T
    return np.clip(np.nan_to_num(aligned, nan=0.5), 0.0, 1.0).astype(np.float32)


def smooth_lips(lips: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` frames (odd; 1 = off). At the ends it averages the frames
    there are, so the first and last frames are not pulled towards zero."""
    if window % 2 == 0:
        raise ValueError(f"smooth window must be odd, got {window}")
    lips = np.asarray(lips, np.float32)
    if window == 1 or len(lips) < 2:
        return lips.copy()
    half = window // 2
    totals = np.concatenate([np.zeros((1, lips.shape[1])), np.cumsum(lips, 0, dtype=np.float64)])
    index = np.arange(len(lips))
    lo, hi = np.maximum(index - half, 0), np.minimum(index + half + 1, len(lips))
    return ((totals[hi] - totals[lo]) / (hi - lo)[:, None]).astype(np.float32)


def _whitener(stats: LipsStats) -> tuple[np.ndarray, np.ndarray]:
    """(mean, W) with |W (x - mean)| the Mahalanobis distance under a ridged covariance."""
    mean, cov = stats.mean, stats.cov
    cov = cov + RIDGE * np.trace(cov) / len(cov) * np.eye(len(cov))
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return mean, (vectors / np.sqrt(np.clip(values, 1e-12, None))).T


def lips_distance(lips: np.ndarray, stats: LipsStats) -> np.ndarray:
    """(T,) Mahalanobis distance of each frame's lips from a distribution's mean."""
    mean, whiten = _whitener(stats)
    return np.linalg.norm((np.asarray(lips, np.float64) - mean) @ whiten.T, axis=1)


def bound_lips(lips: np.ndarray, stats: LipsStats, bound: float) -> np.ndarray:
    """Lips further than `bound` (Mahalanobis) from the training lips pulled in along the line to
    their mean, onto the bound; the rest untouched. `bound` 0 turns the guard off."""
    lips = np.asarray(lips, np.float32)
    if bound <= 0 or not len(lips):
        return lips
    distance = lips_distance(lips, stats)
    far = distance > bound
    if not far.any():
        return lips
    mean = stats.mean
    pulled = lips.copy()
    pulled[far] = (mean + (lips[far] - mean) * (bound / distance[far])[:, None]).astype(np.float32)
    return pulled


def source_stats(
    mode: str, clip: LipsStats, corpus: LipsStats, output: LipsStats | None = None
) -> tuple[LipsStats | None, LipsStats | None]:
    """(source, prior) for align_lips from render.align, the clip's own lip moments and the corpus's
    (`pooled_stats` of the generator's lip statistics). `output`: the LSTM's own (LstmArtifact.output_stats,
    how widely it moves the mouth on speech it knows), the prior a clip's swing is judged against: the
    corpus's lips also vary from person to person, which no prediction does, so against them every clip
    would look as if it barely moved and be shrunk."""
    return (corpus, None) if mode == "corpus" else (clip, output or corpus)


def closed_lips(lips: np.ndarray, lip_indices: list[int]) -> np.ndarray:
    """(LIPS_DIM,) a speaker's closed mouth: the mean of their lips (frames with a face, (T, LIPS_DIM)) over
    the frames whose opening is in their lowest decile (at most the CLOSED_QUANTILE of their openings)."""
    lips = np.asarray(lips, np.float64)
    lips = lips[np.isfinite(lips).all(1)]
    opening = lips_opening(lips, lip_indices)
    return lips[opening <= np.quantile(opening, CLOSED_QUANTILE)].mean(0).astype(np.float32)


def opening_gradient(mean: np.ndarray, lip_indices: list[int]) -> np.ndarray:
    """(LIPS_DIM,) the gradient of the opening (lips_opening, the inner-lip gap) at lips `mean`: the
    opening taken as linear near there."""
    points = np.asarray(mean, np.float64).reshape(-1, 2)
    top, bottom = list(lip_indices).index(INNER_TOP), list(lip_indices).index(INNER_BOTTOM)
    gap = points[bottom] - points[top]
    gradient = np.zeros_like(points)
    gradient[bottom], gradient[top] = gap, -gap
    return gradient.reshape(-1) / max(np.linalg.norm(gap), 1e-12)


def expected_closed_lips(stats: LipsStats, lip_indices: list[int]) -> np.ndarray:
    """closed_lips for a speaker known by their lip statistics alone (no frames to read): the expected lips
    (Gaussian) given an opening at its CLOSED_QUANTILE / 2, the middle of the lowest decile, the opening
    taken as linear near the mean (the inner-lip gap along its direction there)."""
    mean, cov = np.asarray(stats.mean, np.float64), np.asarray(stats.cov, np.float64)
    gradient = opening_gradient(mean, lip_indices)
    spread = float(np.sqrt(max(gradient @ cov @ gradient, 0.0)))
    if spread == 0:
        return mean.astype(np.float32)
    shift = norm.ppf(CLOSED_QUANTILE / 2) * spread  # the closed opening less the mean one
    return (mean + cov @ gradient * shift / spread**2).astype(np.float32)


def silence_threshold(loudness: np.ndarray, silence_db: float) -> float:
    """The log energy below which a frame of a clip of loudness `loudness` is silence: `silence_db` under
    the clip's loud level (LOUD_PERCENTILE), or SILENCE_FLOOR when that is higher; -inf with the gate off
    (`silence_db` 0) or no frames."""
    loudness = np.asarray(loudness, np.float64)
    if silence_db <= 0 or not len(loudness):
        return -np.inf
    return max(float(np.percentile(loudness, LOUD_PERCENTILE)) - silence_db * NATS_PER_DB, SILENCE_FLOOR)


def gate_lips(lips: np.ndarray, loudness: np.ndarray, threshold: float, closed: np.ndarray) -> np.ndarray:
    """Lips closed in silence: each frame moved towards `closed` by the share of the GATE_WINDOW frames
    around it whose loudness is below `threshold` (so the mouth closes and opens over a few frames)."""
    lips = np.asarray(lips, np.float32)
    silent = (np.asarray(loudness, np.float64) < threshold).astype(np.float32)
    if not silent.any():
        return lips
    weight = smooth_lips(silent[:, None], GATE_WINDOW)[:, 0][:, None]
    return ((1 - weight) * lips + weight * np.asarray(closed, np.float32)).astype(np.float32)


def opening_split(target: LipsStats, lip_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(along, rest): (LIPS_DIM, LIPS_DIM) maps of a deviation from the target's mean lips onto the part its
    opening explains (the target's own lips regressed on their opening: how *their* lips move as they open)
    and the rest, which leaves the opening as it is; along + rest is the identity."""
    cov = np.asarray(target.cov, np.float64)
    gradient = opening_gradient(target.mean, lip_indices)
    spread = float(gradient @ cov @ gradient)
    if spread <= 1e-18:  # a target that never opens: no opening to keep apart
        return np.zeros_like(cov), np.eye(len(cov))
    along = np.outer(cov @ gradient / spread, gradient)
    return along, np.eye(len(cov)) - along


def shaped_lips(lips: np.ndarray, target: LipsStats, shape: Shape) -> np.ndarray:
    """Lips in the target's statistics with their motion beside the opening scaled by shape.gain (the opening
    and the target's mean untouched), clipped to [0, 1]."""
    along, rest = opening_split(target, list(shape.lip_indices))
    mean = np.asarray(target.mean, np.float64)
    moved = (np.asarray(lips, np.float64) - mean) @ (along + shape.gain * rest).T
    return np.clip(mean + moved, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Silence:
    """The silence gate of one clip (models/training/lips.py: gate_lips): frames whose loudness is under
    `threshold` close onto `closed`, the target's closed lips."""

    threshold: float
    closed: np.ndarray


def final_lips(
    lips: np.ndarray,
    params: Params,
    target: LipsStats,
    source: LipsStats | None,
    prior: LipsStats | None,
    corpus: LipsStats,
    loudness: np.ndarray | None = None,
    silence: Silence | None = None,
    shape: Shape | None = None,
) -> np.ndarray:
    """Raw LSTM lips -> what the generator is given: aligned, their shape beside the opening scaled by
    what the LSTM is trusted with (`shape`, or render.shape_gain when a number), smoothed, bounded,
    closed where the speech is silent (models/training/lips.py)."""
    r = params.render
    if r.align != "none":
        lips = align_lips(lips, target, source, prior)
    if shape is not None:  # render.shape_gain: the LSTM's own (auto) or forced
        gain = shape.gain if r.shape_gain == "auto" else float(r.shape_gain)
        if gain != 1:
            lips = shaped_lips(lips, target, Shape(gain, shape.lip_indices))
    lips = bound_lips(smooth_lips(lips, r.smooth_window), corpus, r.max_lips_distance)
    if silence is None or loudness is None:
        return lips
    return gate_lips(lips, loudness, silence.threshold, silence.closed)


def speaker_lips(lips: np.ndarray, params: Params, target: LipsStats, corpus: LipsStats,
                 loudness: np.ndarray | None = None, closed: np.ndarray | None = None,
                 output: LipsStats | None = None, shape: Shape | None = None) -> np.ndarray:
    """What render() does to a whole clip's raw lips for a target speaker of lip statistics `target`, the
    corpus's being `corpus` (the lips the generator, or the LSTM, was trained on), the LSTM's `output`
    (source_stats) and `shape` (Shape). With `loudness` (the log energy per frame) and the target's `closed`
    lips (closed_lips), the clip's statistics are its voiced frames' and its silences close the mouth
    (render.silence_db)."""
    lips = np.asarray(lips, np.float32)
    if loudness is None or closed is None:
        source, prior = source_stats(params.render.align, lips_moments(lips), corpus, output)
        return final_lips(lips, params, target, source, prior, corpus, shape=shape)
    threshold = silence_threshold(loudness, params.render.silence_db)
    voiced = np.asarray(loudness) >= threshold
    clip = lips_moments(lips[voiced] if voiced.sum() >= 2 else lips)
    source, prior = source_stats(params.render.align, clip, corpus, output)
    return final_lips(lips, params, target, source, prior, corpus, loudness, Silence(threshold, closed),
                      shape)


def voiced_moments(raw: np.ndarray, threshold: float, chunk: int, every: LipsStats) -> LipsStats:
    """The moments of the raw lips (raw[:, :-1]) of the frames whose loudness (raw[:, -1]) is `threshold`
    or more, read `chunk` frames at a time; `every` (all frames') when fewer than 2 are."""
    sums = MomentSums(raw.shape[1] - 1)
    for start in range(0, len(raw), chunk):
        block = np.asarray(raw[start : start + chunk])
        sums.add(block[block[:, -1] >= threshold, :-1])
    return sums.moments() if sums.frames >= 2 else every
