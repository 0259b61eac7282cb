"""Speech -> lips, streaming (ARCHITECTURE.md, Rendering): audio features computed exactly as in
preprocessing (tasks.rows.features.audio_features), then the LSTM, a chunk of frames at a time in
constant memory, equal to a whole-file run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from models.networks.lstm import predict_lips
from models.rendering.loading import Models
from tasks.config.params import PreprocessParams
from tasks.rows.features import DELTA_WIDTH, audio_features


def frame_count(samples: int, sample_rate: int, fps: float) -> int:
    """Frames at times i / fps that cover `samples`: ceil(seconds * fps), immune to 8.0 * 30 = 240.00..03."""
    return math.ceil(samples * fps / sample_rate - 1e-9)


def speech_lips(
    models: Models, samples: np.ndarray, sample_rate: int, fps: float, params: PreprocessParams
) -> np.ndarray:
    """(T, LIPS_DIM) raw LSTM lips in [0, 1] for the whole of `samples` (mono float32), frames at times
    i / fps, T = ceil(len(samples) / sample_rate * fps). Holds the whole clip: `stream_lips` is the
    same in constant memory."""
    times = np.arange(frame_count(len(samples), sample_rate, fps)) / fps
    features = audio_features(samples, sample_rate, times, params)
    return predict_lips(models.lstm, models.lstm_artifact, features)


class _Buffer:
    """The samples still needed: a window of the stream, `offset` the global index of its first."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks, self.samples, self.offset, self.ended = iter(blocks), np.zeros(0, np.float32), 0, False

    @property
    def end(self) -> int:
        return self.offset + len(self.samples)

    def fill(self, needed: int) -> None:
        pieces = [self.samples]
        have = self.end
        while have < needed and not self.ended:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
                break
            pieces.append(np.asarray(block, np.float32).reshape(-1))
            have += len(pieces[-1])
        self.samples = np.concatenate(pieces)

    def drop_before(self, keep: int) -> None:
        if keep > self.offset:
            self.samples, self.offset = self.samples[keep - self.offset :], keep


def stream_lips(
    models: Models,
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    fps: float,
    params: PreprocessParams,
    chunk_frames: int = 300,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`speech_lips` over audio arriving in blocks of any size: yields (lips (n, LIPS_DIM), features
    (n, feature_dim)) for consecutive frames, `chunk_frames` at a time, equal to the whole-file result.

    Each chunk is computed over its frames plus a margin on both sides, wide enough for the deltas
    (DELTA_WIDTH frames) and the LSTM's window (2 * context + 1 frames) to see the same neighbours as
    in a whole-file run; the margin frames are thrown away. Samples are kept from the first one the
    next chunk's earliest window needs.
    """
    margin = models.lstm_artifact.context + DELTA_WIDTH
    # Half of the feature window, rounded up, and one sample of slack for the rounding of centres.
    pad = round(params.window_ms / 1000 * sample_rate) + 1
    buffer, done = _Buffer(blocks), 0
    while True:
        buffer.fill(math.ceil((done + chunk_frames + margin - 1) / fps * sample_rate) + pad)
        total = frame_count(buffer.end, sample_rate, fps) if buffer.ended else None
        if total is not None and done >= total:
            return
        end = done + chunk_frames if total is None else min(done + chunk_frames, total)
        first = max(0, done - margin)
        last = end + margin if total is None else min(end + margin, total)
        # Times relative to the buffer's start: the same window centres as over the whole file.
        times = np.arange(first, last) / fps - buffer.offset / sample_rate
        features = audio_features(buffer.samples, sample_rate, times, params)
        lips = predict_lips(models.lstm, models.lstm_artifact, features)
        yield lips[done - first : end - first], features[done - first : end - first]
        done = end
        buffer.drop_before(max(0, math.floor((done - margin) / fps * sample_rate) - pad))
