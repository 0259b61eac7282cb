"""The linear map whose lips are mixed with the LSTM's (`lstm.linear_share`; models/records.py: LinearLips).

Every feature of the frame table's layout as the LSTM's artifact hears it (Whisper's windowed states too,
which the LSTM itself does not hear: models/networks/lstm.py, LINEAR_ONLY), standardised over the training
frames and stacked over the LSTM's window of 2 lstm.context + 1 frames, maps to the lips by ridge
regression (numpy's solve of the normal equations, weight `lstm.linear_weight` on the sum of squares over
every training frame) fitted to each video's lips less their own mean (with lstm.targets "speaker"; the
training mean with "corpus"). It has no epochs and fits in seconds.

Why: on people it never heard, a linear map of Whisper's states follows the mouth as well as an LSTM does
on them, and the mean of the two follows it better than either (ARCHITECTURE.md, Real voices).
"""

from __future__ import annotations

import numpy as np

from models.networks.lstm import heard_features, window_index
from models.records import LinearLips
from models.training.data import Corpus
from tasks.config.params import Params


def fit_linear(corpus: Corpus, rows: dict[str, np.ndarray], params: Params) -> LinearLips | None:
    """The linear map of the frames with a face in `rows` (per video: the training frames), or None when
    lstm.linear_share is 0."""
    p = params.lstm
    if p.linear_share == 0:
        return None
    layout = list(corpus.meta.get("feature_layout", []))
    heard = {v.video_id: heard_features(v.audio, layout, p.phone_classes).astype(np.float64)
             for v in corpus.videos if (rows[v.video_id] & v.face_found).any()}
    if not heard:
        raise ValueError("lstm.linear_share: no training frame with a face to fit the linear map on")
    frames = {v.video_id: np.flatnonzero(rows[v.video_id] & v.face_found) for v in corpus.videos
              if v.video_id in heard}
    seen = np.concatenate([heard[v][f] for v, f in frames.items()])
    mean, std = seen.mean(0), np.maximum(seen.std(0), 1e-6)
    lips = np.concatenate([corpus.video(v).lips[f] for v, f in frames.items()]).astype(np.float64)
    width = (2 * p.context + 1) * len(mean)
    gram, cross = np.zeros((width, width)), np.zeros((width, lips.shape[1]))
    for v in corpus.videos:
        if v.video_id not in heard:
            continue
        at = frames[v.video_id]
        x = ((heard[v.video_id] - mean) / std)[window_index(len(v), p.context)[at]].reshape(len(at), width)
        own = v.lips[at].astype(np.float64)
        y = own - (own.mean(0) if p.targets == "speaker" else lips.mean(0))
        gram += x.T @ x
        cross += x.T @ y
    matrix = np.linalg.solve(gram + p.linear_weight * np.eye(width), cross)
    return LinearLips(matrix, mean, std, lips.mean(0), p.linear_share)
