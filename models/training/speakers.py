"""Speech -> lips measured on people the LSTM never heard (ARCHITECTURE.md, Metrics).

Each held-out video's speech (its audio column) goes through a predictor of raw lips, then through what a
render does to them for a target (models/training/lips.py: speaker_lips, `render.align`), the target
being that speaker's own lips; what comes out is measured against their true lips: `mouth_open_r`,
`lmd_px` (the mean over speakers), `sync_offset_frames` (metrics.sync_offset over every speaker's
lag_correlations) and `amp` (the std of the opening asked for over the std of the speaker's real opening:
1 when the mouth swings as widely as theirs; the mean over speakers, `amp_min` the smallest). The
predictors: the LSTM, and two baselines fitted on the training speakers only, `loudness_` (LoudnessLips:
the opening an affine function of log energy) and `mean_` (the training mean).

`silence_scores` pads a speaker's real speech with silences and measures the mouth asked for there against
their closed mouth (metrics.closed_mouth): `closed_gap`, `closed_std`, in crop pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.records import LipsStats, Shape
from models.training.data import Corpus, Video
from models.training.lip_metrics import closed_mouth, lag_correlations, lip_metrics, sync_offset
from models.training.lips import MomentSums, closed_lips, lips_moments, silence_threshold, speaker_lips
from tasks.config.params import Params
from tasks.rows.features import LOG_ENERGY, audio_features
from tasks.rows.landmarks import lips_opening

# (frames, features) raw audio features of a clip -> (frames, LIPS_DIM) raw lips in [0, 1] of the crop.
Predict = Callable[[np.ndarray], np.ndarray]
# Silences padded into real speech last this long (seconds, uniform), as the test asks; the speech
# between them comes in pieces of PIECE_S.
SILENCE_S, PIECE_S = (0.5, 2.0), (1.5, 4.0)
# Frames this near speech are left out of a silence's figures: a real mouth takes this long to close.
SILENCE_MARGIN_S = 0.2


def training_lips(corpus: Corpus, rows: dict[str, np.ndarray]) -> np.ndarray:
    """(N, LIPS_DIM) every training frame's lips that has a face."""
    return np.concatenate([v.lips[rows[v.video_id] & v.face_found] for v in corpus.videos])


@dataclass(frozen=True)
class LoudnessLips:
    """"Open with loudness": the opening an affine function of log energy (least squares over the training
    frames), and lips the training mean opened along the training set's opening direction (the regression
    of the lips on their opening) by that much."""

    intercept: float
    slope: float
    mean: np.ndarray  # (LIPS_DIM,) the training lips' mean
    direction: np.ndarray  # (LIPS_DIM,) lips per unit of opening
    mean_opening: float

    @classmethod
    def fit(cls, corpus: Corpus, rows: dict[str, np.ndarray], lip_indices: list[int]) -> LoudnessLips:
        energy = np.concatenate([v.audio[rows[v.video_id] & v.face_found, LOG_ENERGY] for v in corpus.videos])
        lips = training_lips(corpus, rows).astype(np.float64)
        opening = lips_opening(lips, lip_indices).astype(np.float64)
        slope, intercept = np.polyfit(energy.astype(np.float64), opening, 1)
        centred = opening - opening.mean()
        direction = (lips - lips.mean(0)).T @ centred / max(float(centred @ centred), 1e-12)
        return cls(float(intercept), float(slope), lips.mean(0), direction, float(opening.mean()))

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        opening = self.intercept + self.slope * np.asarray(audio, np.float64)[:, LOG_ENERGY]
        return (self.mean + np.outer(opening - self.mean_opening, self.direction)).astype(np.float32)


def output_stats(predict: Predict, corpus: Corpus, rows: dict[str, np.ndarray], params: Params) -> LipsStats:
    """The statistics of the lips `predict` asks for on the voiced frames (render.silence_db) of the speech
    of the videos with rows in `rows` (the training frames): LstmArtifact.output_stats."""
    sums = MomentSums(len(corpus.videos[0].lips[0]))
    for v in corpus.videos:
        if not rows[v.video_id].any():
            continue
        loudness = v.audio[:, LOG_ENERGY]
        voiced = rows[v.video_id] & (loudness >= silence_threshold(loudness, params.render.silence_db))
        sums.add(predict(v.audio)[voiced])
    return sums.moments()


def mean_lips(corpus: Corpus, rows: dict[str, np.ndarray]) -> Predict:
    """The training mean, whatever the speech."""
    mean = training_lips(corpus, rows).mean(0).astype(np.float32)
    return lambda audio: np.repeat(mean[None], len(audio), 0)


def speaker_scores(predict: Predict, videos: list[Video], params: Params, corpus: LipsStats,
                   face_size: int, lip_indices: list[int],
                   measured: dict[str, np.ndarray] | None = None,
                   output: LipsStats | None = None, shape: Shape | None = None) -> tuple[dict, list[dict]]:
    """({mouth_open_r, lmd_px, sync_offset_frames, amp, amp_min} over `videos`, the same per video): each
    video's speech through `predict`, aligned to the video's own lips as a render aligns to its target.
    `measured`: per video id, the frames measured (and whose lips are the target's), e.g. the later part
    of a trained person's video (split.by_time); the whole video's speech is heard either way. `output`:
    the predictor's own lip statistics (LstmArtifact.output_stats; models/training/lips.py: source_stats);
    `shape`: how much of its lips' shape it is trusted with (LstmArtifact.shape)."""
    per_video, curves, weights = [], [], []
    for v in videos:
        face = v.face_found if measured is None else v.face_found & measured[v.video_id]
        asked = speaker_lips(predict(v.audio), params, lips_moments(v.lips[face]), corpus,
                             v.audio[:, LOG_ENERGY], closed_lips(v.lips[face], lip_indices), output, shape)
        scores = lip_metrics(asked[face], v.lips[face], face_size, lip_indices)
        real = np.where(face, lips_opening(np.nan_to_num(v.lips), lip_indices), np.nan)
        opening = lips_opening(asked, lip_indices)
        if measured is not None:  # the lag curve over the measured span only
            span = np.flatnonzero(measured[v.video_id])
            opening, real = opening[span[0]:span[-1] + 1], real[span[0]:span[-1] + 1]
            face = face[span[0]:span[-1] + 1]
        curves.append(lag_correlations(opening, real))
        weights.append(float(face.sum()))
        per_video.append({"video_id": v.video_id, **scores,
                          "sync_offset_frames": sync_offset(curves[-1:], [1.0]),
                          "amp": float(np.std(opening[face]) / max(float(np.nanstd(real)), 1e-12))})
    together = {name: float(np.mean([row[name] for row in per_video]))
                for name in ("mouth_open_r", "lmd_px", "amp")}
    together["amp_min"] = float(min(s["amp"] for s in per_video))
    together["sync_offset_frames"] = sync_offset(curves, weights)
    return together, per_video


def held_out_scores(predict: Predict, corpus: Corpus, rows: dict[str, np.ndarray], held_out: list[str],
                    params: Params, baselines: bool = True,
                    measured: dict[str, np.ndarray] | None = None,
                    output: LipsStats | None = None, shape: Shape | None = None) -> dict:
    """speaker_scores of `predict` and (`baselines`), prefixed loudness_ and mean_, of the two baselines
    fitted on `rows` (the training frames), on the videos `held_out` (`measured`, `output`, `shape`:
    speaker_scores', the predictor's alone); flat, as a benchmark prints it."""
    lip_indices, face_size = list(corpus.meta["lip_indices"]), int(corpus.meta["face_size"])
    videos = [corpus.video(video_id) for video_id in held_out]
    stats = lips_moments(training_lips(corpus, rows))
    scores, methods = {}, {"": predict}
    if baselines:
        methods.update(loudness_=LoudnessLips.fit(corpus, rows, lip_indices), mean_=mean_lips(corpus, rows))
    for prefix, method in methods.items():
        own = prefix == ""
        together, _ = speaker_scores(method, videos, params, stats, face_size, lip_indices, measured,
                                     output if own else None, shape if own else None)
        scores.update({prefix + name: value for name, value in together.items()})
    return scores


def pad_with_silence(samples: np.ndarray, sample_rate: int, fps: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(speech cut into pieces of PIECE_S with a silence of SILENCE_S before each and after the last,
    (frames,) bool: the frames at i / fps inside a silence, SILENCE_MARGIN_S or further from speech)."""
    cuts = [0]
    while cuts[-1] < len(samples):
        cuts.append(min(len(samples), cuts[-1] + round(rng.uniform(*PIECE_S) * sample_rate)))
    pieces, speaking = [], []
    for lo, hi in [*itertools.pairwise(cuts), (len(samples), len(samples))]:
        pieces.append(np.zeros(round(rng.uniform(*SILENCE_S) * sample_rate), np.float32))
        pieces.append(np.asarray(samples[lo:hi], np.float32))
        speaking.append(np.concatenate([np.zeros(len(pieces[-2]), bool), np.ones(hi - lo, bool)]))
    padded, speaking = np.concatenate(pieces), np.concatenate(speaking)
    frames = int(np.ceil(len(padded) * fps / sample_rate - 1e-9))
    at = np.minimum((np.arange(frames) / fps * sample_rate).astype(int), len(padded) - 1)
    near = np.convolve(speaking[at], np.ones(2 * round(SILENCE_MARGIN_S * fps) + 1), "same") > 0
    return padded, ~near


def silence_scores(predict: Predict, speech: dict[str, np.ndarray], corpus: Corpus, stats: LipsStats,
                   params: Params, seed: int = 0, output: LipsStats | None = None,
                   shape: Shape | None = None) -> tuple[dict, list[dict]]:
    """({closed_gap, closed_std, closed_floor_gap} in crop pixels, the mean over the speakers of `speech`
    (video id -> its samples at preprocess.sample_rate), the same per speaker): metrics.closed_mouth over
    the silences pad_with_silence puts in their speech, the mouth asked for aligned to the speaker's own
    lips as a render aligns it; closed_floor_gap: that mean opening less the speaker's smallest (at least
    0: not shut tighter than they ever shut it; with closed_gap at most 0, within their closed range)."""
    p = params.preprocess
    lip_indices, face_size = list(corpus.meta["lip_indices"]), int(corpus.meta["face_size"])
    rng = np.random.default_rng(seed)
    per_video = []
    for video_id, samples in speech.items():
        v = corpus.video(video_id)
        padded, silent = pad_with_silence(samples, p.sample_rate, p.fps, rng)
        features = audio_features(padded, p.sample_rate, np.arange(len(silent)) / p.fps, p)
        own = v.lips[v.face_found]
        asked = speaker_lips(predict(features), params, lips_moments(own), stats, features[:, LOG_ENERGY],
                             closed_lips(own, lip_indices), output, shape)
        opening, real = lips_opening(asked, lip_indices)[silent], lips_opening(own, lip_indices)
        gap, std = closed_mouth(opening, real)
        per_video.append({"video_id": video_id, "closed_gap": gap * face_size, "closed_std": std * face_size,
                          "closed_floor_gap": float(opening.mean() - real.min()) * face_size})
    together = {name: float(np.mean([row[name] for row in per_video]))
                for name in ("closed_gap", "closed_std", "closed_floor_gap")}
    return together, per_video
