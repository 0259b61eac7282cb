"""How much of the lips' shape beside their opening an LSTM is trusted with on voices it never heard
(ARCHITECTURE.md, Splits and sync): LstmArtifact.shape_gain.

A render maps the lips asked for onto the target's own lip statistics (models/training/lips.py:
align_lips), so they swing as widely as the target's in every direction: in the opening, which the speech
tells well, and in the rest of the shape (how wide, how round, how far up), which it tells far less well
for a voice it never heard. Swung at full width, that poorly told part moves the lips further from the
truth than the target's mean mouth would (`lmd_px` above the mean baseline's), and shows as lips that
wobble. So the rest is scaled by the least-squares gain that the models of models/training/sync.py (each
trained on the other folds of people) earn on the training clips they never heard: what speech tells of
the shape is kept, what it does not is left at the target's mean. The opening is never scaled: the mouth
opens as widely as the target's does (the `amp` figure).

A corpus of one person (no folds; measured by the shipped base, which never learned this person) keeps
the gain at 1: the LSTM will speak for the person it learned.
"""

from __future__ import annotations

import numpy as np

from models.training.data import Corpus
from models.training.lips import closed_lips, lips_moments, opening_split, speaker_lips
from models.training.split import Split
from models.training.sync import Fit, FoldFit, fold_fits, fold_offsets, in_sync
from tasks.config.params import Params
from tasks.rows.features import LOG_ENERGY


def shape_gain(fits: list[FoldFit], corpus: Corpus, split: Split, params: Params) -> float:
    """In [0, 1]: the least-squares gain of the lips' motion beside the opening (lips.opening_split's rest),
    asked for by each fit from the speech of the videos it never heard, after the alignment a render makes
    to the video's own lips, against those lips (their training frames with a face; `corpus` already in
    sync), pooled over frames; 1 with no fits of other people to measure by."""
    lip_indices = list(corpus.meta["lip_indices"])
    agree = power = 0.0
    for fit in fits:
        if fit.shipped:
            continue
        for video_id in fit.videos:
            video = corpus.video(video_id)
            face = video.face_found & split.train[video_id]
            if face.sum() < 2:
                continue
            own = lips_moments(video.lips[face])
            asked = speaker_lips(fit.predict(video.audio), params, own, fit.stats, video.audio[:, LOG_ENERGY],
                                 closed_lips(video.lips[face], lip_indices), fit.output)[face]
            _, rest = opening_split(own, lip_indices)
            predicted = (asked - own.mean) @ rest.T
            true = (video.lips[face] - own.mean) @ rest.T
            agree += float((predicted * true).sum())
            power += float((predicted * predicted).sum())
    return 1.0 if power <= 0 else float(np.clip(agree / power, 0.0, 1.0))


def folds_say(corpus: Corpus, split: Split, params: Params, fit: Fit) -> tuple[Corpus, dict[str, int], float]:
    """(the corpus with each training video's lips moved by its offset, the offsets, the shape gain): what
    the fold models of `fit` (models/training/sync.py: fold_fits) say of the videos each never heard."""
    fits = fold_fits(corpus, split, params, fit)
    offsets = fold_offsets(fits, corpus, split, params)
    corpus = in_sync(corpus, offsets)
    return corpus, offsets, shape_gain(fits, corpus, split, params)
