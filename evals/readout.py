"""A linear readout in the LSTM's place, for evals/speech_tries.py (`readout`: `ridge`, `mix`).

`ridge`: the lips asked for are one matrix times the inputs a try hears, standardised over its training
frames and stacked over the same window of frames the LSTM hears (lstm.context either side), fitted by
ridge regression (numpy's solve of the normal equations) to each video's lips less their own mean. It has
no epochs: the dev third of the training people chooses its ridge weight among RIDGE_WEIGHTS instead, in
the place of the LSTM's epoch counts (the try's `epochs` is EVERY times the chosen weight's place, from
1). `mix`: the mean of that readout (at the weight dev chose for Whisper's states, MIX_WEIGHT, or the
setting's `linear_weight`) and the LSTM (or the setting's `linear_share` of the readout), whose epochs dev
chooses on the mean.

Whether the network or the data limits how far a voice never heard is followed: on Whisper's states the
linear map follows the held-out people as well as the LSTM does (docs/results.md, Real voices).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evals.speech_inputs import Inputs, features
from models.networks.lstm import window_index
from models.training.data import Corpus
from tasks.config.params import Params

RIDGE_WEIGHTS = (1e4, 3e4, 1e5, 3e5)  # on the sum of squares over every training frame
MIX_WEIGHT = 1e5
Predict = Callable[[str], np.ndarray]  # video id -> raw lips (frames, LIPS_DIM) for its whole speech


def stacked(x: np.ndarray, context: int) -> np.ndarray:
    """(frames, (2 context + 1) D): each frame's inputs beside those of the context frames either side (the
    LSTM's window, models/networks/lstm.py: window_index)."""
    return x[window_index(len(x), context)].reshape(len(x), -1)


def fit_ridge(setting: dict, train: dict[str, np.ndarray], inputs: Inputs, corpus: Corpus, params: Params,
              shifts: dict[str, int] | None = None) -> Callable[[float], Predict]:
    """The readout of the frames `train` names (per video; each video's speech read `shifts` frames
    later, as the LSTM's training reads it), as a function of its ridge weight."""
    context, shifts = setting.get("context", params.lstm.context), shifts or {}
    heard = {v.video_id: stacked(features(inputs.copy(0)[v.video_id], setting), context)
             for v in corpus.videos if v.video_id in train}
    xs, ys = [], []
    for v in corpus.videos:
        rows = train.get(v.video_id)
        if rows is None or not (rows & v.face_found).any():
            continue
        frames = np.flatnonzero(rows & v.face_found)
        xs.append(heard[v.video_id][np.clip(frames + shifts.get(v.video_id, 0), 0, len(v) - 1)])
        ys.append(v.lips[frames] - v.lips[frames].mean(0))
    x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
    x_mean, x_std = x.mean(0), np.maximum(x.std(0), 1e-6)
    x = (x - x_mean) / x_std
    gram, cross = x.T @ x, x.T @ (y - y.mean(0))
    lips_mean = np.concatenate([v.lips[r & v.face_found] for v in corpus.videos
                                if (r := train.get(v.video_id)) is not None]).mean(0)

    def at(weight: float) -> Predict:
        matrix = np.linalg.solve(gram + weight * np.eye(len(gram)), cross)

        def predict(video: str) -> np.ndarray:
            heard_x = stacked(features(inputs.copy(0)[video], setting), context)
            return ((heard_x - x_mean) / x_std) @ matrix + lips_mean
        return predict
    return at


def mixed(linear: Predict, lstm: Predict, share: float = 0.5) -> Predict:
    """`share` of the linear readout's lips and the rest of the LSTM's."""
    return lambda video: share * linear(video) + (1 - share) * lstm(video)
