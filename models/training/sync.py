"""Each training video's own audio-video offset, and its lips moved by it before the LSTM learns from them
(ARCHITECTURE.md, Splits and sync).

Real clips are not all in sync: a recorder, an encoder or an edit moves the sound against the picture by a
few frames (Obama's weekly address in the real fixtures: his sound leads his lips by 6 frames). An LSTM
trained on such clips learns a smeared, late or early mouth. As the lip-reading corpora do with SyncNet,
each video's offset is measured by a model that never heard it: the training people are dealt into
`lstm.sync_folds` folds (by a hash of their name), an LSTM is trained on the other folds, and the lag at
which its mouth opening best follows the video's own (models/training/lip_metrics.py: lag_correlations,
within MAX_LAG frames, over the video's training frames only) is the video's offset. The video's lips
are then moved by it (the audio stays), so that the stage trains on sound and picture in sync.

Only the training frames are measured, so a video split by time (split.by_time) is moved by what its
trained part says; videos held out whole are never measured nor moved. A corpus of one person (the
paper's setting: one man's addresses) has no other people to learn from, so its clips are measured by the
shipped base LSTM (models/base/lstm.pt, trained on other people) when it hears what the corpus's rows
hold, else left as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from models.artifacts import SHIPPED_BASE
from models.networks.lstm import load_lstm, predict_lips
from models.records import LipsStats
from models.training.data import Corpus, Video
from models.training.lips import lips_moments
from models.training.speakers import Predict, speaker_scores, training_lips
from models.training.split import Split, speaker_of
from tasks.config.params import Params

# An LSTM trained on one split's training frames: its predictor of raw lips, and its output stats.
Fit = Callable[[Split], tuple[Predict, LipsStats | None]]


def sync_folds(split: Split, params: Params) -> list[list[str]]:
    """The training videos dealt into at most lstm.sync_folds folds, no person in two; [] when fewer than
    two people train (nothing that never heard a video could measure it)."""
    trained = sorted(video for video, rows in split.train.items() if rows.any())
    people = sorted({speaker_of(video, params) for video in trained},
                    key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    folds = min(params.lstm.sync_folds, len(people))
    if folds < 2:
        return []
    return [[video for video in trained if speaker_of(video, params) in people[fold::folds]]
            for fold in range(folds)]


def shipped_fit(corpus: Corpus) -> Fit | None:
    """The shipped base LSTM as the measuring model (whatever split it is asked for: it never trained on
    this corpus), when it hears the features the corpus's rows hold; else None."""
    path = SHIPPED_BASE / "lstm.pt"
    if not path.is_file():
        return None
    model, artifact = load_lstm(path)
    if list(artifact.feature_layout) != list(corpus.meta.get("feature_layout", [])):
        return None
    return lambda split: ((lambda audio: predict_lips(model, artifact, audio)), artifact.output_stats)


@dataclass(frozen=True)
class FoldFit:
    """A model that never heard `videos`, to measure them with on their training frames: its predictor of raw
    lips, its output stats, the lips of the frames it trained on (`stats`); `shipped`: the shipped base LSTM
    measuring a corpus of one person (shipped_fit)."""

    videos: list[str]
    predict: Predict
    output: LipsStats | None
    stats: LipsStats
    shipped: bool = False


def fold_fits(corpus: Corpus, split: Split, params: Params, fit: Fit,
              alone: Callable[[Corpus], Fit | None] = shipped_fit) -> list[FoldFit]:
    """One FoldFit per fold of sync_folds, each fitted (`fit`) on the other folds' training frames; for a
    corpus of one person, `alone`'s model (shipped_fit) over all its videos when it gives one; else []."""
    folds, shipped = sync_folds(split, params), False
    if not folds and params.lstm.sync_folds and (base := alone(corpus)) is not None:
        folds, fit, shipped = [sorted(video for video, rows in split.train.items() if rows.any())], base, True
    fits = []
    for fold in folds:
        train = {video: rows & (video not in fold) for video, rows in split.train.items()}
        others = Split(split.by, train, {video: np.zeros_like(rows) for video, rows in split.train.items()})
        predict, output = fit(others)
        known = train if any(rows.any() for rows in train.values()) else split.train  # alone: its own lips
        fits.append(FoldFit(fold, predict, output, lips_moments(training_lips(corpus, known)), shipped))
    return fits


def fold_offsets(fits: list[FoldFit], corpus: Corpus, split: Split, params: Params) -> dict[str, int]:
    """{video id: its offset in frames} for every video of `fits`, measured by the fit that never heard
    it: > 0 when its sound comes after its lips (the mouth asked for from its speech is late by that much),
    < 0 when it leads them."""
    offsets: dict[str, int] = {}
    lip_indices, face_size = list(corpus.meta["lip_indices"]), int(corpus.meta["face_size"])
    for fit in fits:
        videos = [corpus.video(video) for video in fit.videos]
        measured = {video: split.train[video] for video in fit.videos}
        _, per_video = speaker_scores(fit.predict, videos, params, fit.stats, face_size, lip_indices,
                                      measured, fit.output)
        offsets.update({row["video_id"]: int(row["sync_offset_frames"]) for row in per_video
                        if np.isfinite(row["sync_offset_frames"])})
    return offsets


def moved(video: Video, frames: int) -> Video:
    """`video` with its lips (and face_found) `frames` later, against the same audio; the frames left
    without lips have no face."""
    if frames == 0:
        return video
    lips, face = np.full_like(video.lips, np.nan), np.zeros_like(video.face_found)
    if frames > 0:
        lips[frames:], face[frames:] = video.lips[:-frames], video.face_found[:-frames]
    else:
        lips[:frames], face[:frames] = video.lips[-frames:], video.face_found[-frames:]
    return replace(video, lips=lips, face_found=face)


def in_sync(corpus: Corpus, offsets: dict[str, int]) -> Corpus:
    """The corpus with each video's lips moved by its offset."""
    return replace(corpus, videos=[moved(v, offsets.get(v.video_id, 0)) for v in corpus.videos])
