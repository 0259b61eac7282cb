"""Speech -> lips, streaming (ARCHITECTURE.md, Rendering): audio features computed exactly as in
preprocessing (tasks.rows.features.audio_features), then the LSTM, a chunk of frames at a time in
constant memory, equal to a whole-file run.

What the LSTM hears is its own: its artifact's feature layout (with or without phones, words and Whisper's
states) decides, not the project's `preprocess.phones`, `words` and `whisper`, so a shipped or adapted LSTM
renders in any project (`heard_params`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from models.errors import RenderError
from models.networks.lstm import predict_lips
from models.rendering.loading import Models
from tasks.config.params import PreprocessParams
from tasks.rows.features import DELTA_WIDTH, audio_features, params_layout, phone_kinds
from tasks.rows.phones import PHONE_WINDOW_S, STEP_S, PhoneBlocks, block_steps
from tasks.rows.whisper import (
    HOP_S,
    LOOKAHEAD_S,
    STATE_S,
    WhisperBlocks,
    WhisperWindows,
    block_samples,
    whisper_kind,
)


def frame_count(samples: int, sample_rate: int, fps: float) -> int:
    """Frames at times i / fps that cover `samples`: ceil(seconds * fps), immune to 8.0 * 30 = 240.00..03."""
    return math.ceil(samples * fps / sample_rate - 1e-9)


def heard_params(models: Models, params: PreprocessParams) -> PreprocessParams:
    """`params` with `phones`, `words` and `whisper` as the LSTM was trained (its artifact's feature
    layout); RenderError when that layout is not one preprocessing makes with these params (another
    n_mfcc)."""
    layout = list(models.lstm_artifact.feature_layout)
    if not layout:  # an artifact from before layouts were recorded: the paper's features
        return params.model_copy(update={"phones": False, "words": False, "whisper": False})
    heard = params.model_copy(update={"phones": any(name.startswith("phone_") for name in layout),
                                      "words": any(name.startswith("word_") for name in layout),
                                      "whisper": whisper_kind(layout)})
    if params_layout(heard) != layout:
        raise RenderError(f"{models.lstm_path}: the LSTM hears {len(layout)} audio features "
                          f"({layout[0]} .. {layout[-1]}), not what preprocess.n_mfcc={params.n_mfcc} makes "
                          f"({len(params_layout(heard))}); render with the params it was trained with")
    return heard


def speech_lips(
    models: Models, samples: np.ndarray, sample_rate: int, fps: float, params: PreprocessParams,
    phones: np.ndarray | None = None, states: np.ndarray | None = None,
) -> np.ndarray:
    """(T, LIPS_DIM) raw LSTM lips in [0, 1] for the whole of `samples` (mono float32), frames at times
    i / fps, T = ceil(len(samples) / sample_rate * fps). Holds the whole clip: `stream_lips` is the
    same in constant memory. `phones`: the phone shares (T, 40 per kind) when the LSTM hears phones and the
    caller has them (a live stream's PhoneStream); `states`, Whisper's (T, 384) when it hears them (a live
    stream's WhisperWindows); None: made from `samples`."""
    times = np.arange(frame_count(len(samples), sample_rate, fps)) / fps
    features = audio_features(samples, sample_rate, times, heard_params(models, params), phones, states)
    return predict_lips(models.lstm, models.lstm_artifact, features)


class _Buffer:
    """The samples still needed: a window of the stream, `offset` the global index of its first. Every
    sample read also goes to each of `decoders` (a PhoneBlocks, a WhisperBlocks, a WhisperWindows)."""

    def __init__(self, blocks: Iterable[np.ndarray],
                 decoders: Iterable[PhoneBlocks | WhisperBlocks | WhisperWindows] = ()):
        self.blocks, self.samples, self.offset, self.ended = iter(blocks), np.zeros(0, np.float32), 0, False
        self.decoders = list(decoders)

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
                for decoder in self.decoders:
                    decoder.finish()
                break
            pieces.append(np.asarray(block, np.float32).reshape(-1))
            have += len(pieces[-1])
            for decoder in self.decoders:
                decoder.add(pieces[-1])
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
    next chunk's earliest window needs. When the LSTM hears phones or Whisper's states, they are decoded
    block by block as the samples pass (PhoneBlocks, WhisperBlocks, WhisperWindows), and a chunk waits for
    the block (or window) its last frame is read from.
    """
    params = heard_params(models, params)
    margin = models.lstm_artifact.context + DELTA_WIDTH
    # Half of the feature window, rounded up, and one sample of slack for the rounding of centres.
    pad = round(params.window_ms / 1000 * sample_rate) + 1
    kinds = phone_kinds(params)
    phones = PhoneBlocks(sample_rate, kinds) if kinds else None
    windows = params.whisper == "window"
    states = (WhisperWindows if windows else WhisperBlocks)(sample_rate) if params.whisper else None
    buffer, done = _Buffer(blocks, [d for d in (phones, states) if d is not None]), 0
    while True:
        needed = math.ceil((done + chunk_frames + margin - 1) / fps * sample_rate) + pad
        if phones is not None:  # the last frame's phones, up to the end of the block they fall in
            needed += math.ceil((PHONE_WINDOW_S + 2 * STEP_S) * sample_rate)
            needed = math.ceil(needed / block_steps(sample_rate)) * block_steps(sample_rate)
        if windows:  # the window the last frame is read from
            needed += math.ceil((LOOKAHEAD_S + HOP_S) * sample_rate) + 1
        elif states is not None:  # the states either side of the last frame, to the end of their block
            needed += math.ceil(2 * STATE_S * sample_rate)
            needed = math.ceil(needed / block_samples(sample_rate)) * block_samples(sample_rate)
        buffer.fill(needed)
        total = frame_count(buffer.end, sample_rate, fps) if buffer.ended else None
        if total is not None and done >= total:
            return
        end = done + chunk_frames if total is None else min(done + chunk_frames, total)
        first = max(0, done - margin)
        last = end + margin if total is None else min(end + margin, total)
        # Times relative to the buffer's start: the same window centres as over the whole file.
        times = np.arange(first, last) / fps - buffer.offset / sample_rate
        shares = None if phones is None else phones.features(np.arange(first, last) / fps)
        heard = None if states is None else states.features(np.arange(first, last) / fps)
        features = audio_features(buffer.samples, sample_rate, times, params, shares, heard)
        lips = predict_lips(models.lstm, models.lstm_artifact, features)
        yield lips[done - first : end - first], features[done - first : end - first]
        done = end
        buffer.drop_before(max(0, math.floor((done - margin) / fps * sample_rate) - pad))
        if phones is not None:
            phones.forget(max(0, done - margin) / fps - 2 * PHONE_WINDOW_S)
        if states is not None:
            states.forget(max(0, done - margin) / fps - 2 * STATE_S)
