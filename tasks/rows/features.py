"""Audio features per video frame: 13 MFCC, 13 delta, log energy, delta log energy (the paper's 28), and with
`preprocess.phones` the share of each of PocketSphinx's 40 phones around the frame (tasks/rows/phones.py),
with `preprocess.words` the same for the phones of the English words it hears, and with `preprocess.whisper`
the 384 encoder states of Whisper tiny.en (tasks/rows/whisper.py: of 30-s blocks, or with `window` of the
short windows a stream hears), between the deltas and the log energy, so that the loudness stays the last
two columns.

Each frame's window is centred on the frame's time (audio and video are aligned by
timestamps, never by integer frame ratios), so the same code serves the dataset (frame
times of a decoded video) and rendering (frame times of any speech at any fps).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.config.params import PreprocessParams
from tasks.rows.phones import PHONES, shares_of
from tasks.rows.whisper import whisper_layout, whisper_states, window_states

# librosa compiles with numba on first use; without a writable cache that costs ~15 s per process.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "reenact" / "numba"))

import librosa  # after NUMBA_CACHE_DIR is set

# Deltas span +-2 frames (~130 ms at 30 fps): wide enough to smooth, short enough to
# follow syllables, and any clip of 5 frames or more gets the same regression.
DELTA_WIDTH = 5
# The floor of the log energy and the mel power (in dB): silence is a finite, constant vector.
ENERGY_FLOOR = 1e-10
# Frames per block of the spectral step: bounds memory on hour-long audio.
BLOCK = 4096


def feature_layout(n_mfcc: int = 13, phones: bool = False, words: bool = False,
                   whisper: bool | str = False) -> list[str]:
    """Names of the feature dimensions in column order, as stored in the shard metadata."""
    return ([f"mfcc_{i}" for i in range(n_mfcc)] + [f"delta_mfcc_{i}" for i in range(n_mfcc)]
            + ([f"phone_{name}" for name in PHONES] if phones else [])
            + ([f"word_{name}" for name in PHONES] if words else [])
            + whisper_layout(whisper) + ["log_energy", "delta_log_energy"])


def params_layout(params: PreprocessParams) -> list[str]:
    """The layout `audio_features` makes with these params."""
    return feature_layout(params.n_mfcc, params.phones, params.words, params.whisper)


def phone_kinds(params: PreprocessParams) -> tuple[bool, ...]:
    """The phone shares these params put in the features, in order (tasks/rows/phones.py: shares_of):
    False, the phone loop's (`preprocess.phones`); True, the words' (`preprocess.words`)."""
    return (False,) * params.phones + (True,) * params.words


FEATURE_LAYOUT = feature_layout()
# The width of the paper's feature vector (the default preprocess.n_mfcc, 13, without phones): 28.
FEATURE_DIM = len(FEATURE_LAYOUT)
# Columns of a feature vector whatever n_mfcc and phones: the loudness (log energy) and its delta come last.
LOG_ENERGY, DELTA_LOG_ENERGY = -2, -1


def feature_dim(params: PreprocessParams) -> int:
    return len(params_layout(params))


def _static(samples: np.ndarray, sample_rate: int, times: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """(N, n_mfcc + 1): MFCC and log energy of the window centred on each time."""
    window = max(2, round(params.window_ms / 1000 * sample_rate))
    n_fft = 1 << (window - 1).bit_length()
    centres = np.round(np.asarray(times, np.float64) * sample_rate).astype(np.int64)
    starts = centres - window // 2
    # Zero padding on both sides: the first and last frames (and frames past the end of
    # a slightly short audio track) get a full window of (partly) silent audio.
    left = max(0, -int(starts.min()))
    right = max(0, int(starts.max()) + window - len(samples))
    padded = np.pad(samples.astype(np.float32), (left, right))
    starts = starts + left

    mel_basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=params.n_mels)
    taper = np.hanning(window).astype(np.float32)
    offsets = np.arange(window)
    out = np.empty((len(times), params.n_mfcc + 1), np.float32)
    for lo in range(0, len(times), BLOCK):
        frames = padded[starts[lo:lo + BLOCK, None] + offsets]          # (B, window)
        power = np.abs(np.fft.rfft(frames * taper, n=n_fft, axis=1)) ** 2  # (B, n_fft/2+1)
        mel_db = librosa.power_to_db(power @ mel_basis.T, ref=1.0, amin=ENERGY_FLOOR, top_db=None)
        out[lo:lo + BLOCK, :-1] = librosa.feature.mfcc(S=mel_db.T, n_mfcc=params.n_mfcc).T
        out[lo:lo + BLOCK, -1] = np.log(np.sum(frames.astype(np.float64) ** 2, axis=1) + ENERGY_FLOOR)
    return out


def _deltas(static: np.ndarray) -> np.ndarray:
    n = len(static)
    if n < 3:
        return np.zeros_like(static)
    width = min(DELTA_WIDTH, n if n % 2 else n - 1)
    return librosa.feature.delta(static, width=width, axis=0, mode="interp").astype(np.float32)


def audio_features(samples: np.ndarray, sample_rate: int, times: np.ndarray,
                   params: PreprocessParams, phones: np.ndarray | None = None,
                   states: np.ndarray | None = None) -> np.ndarray:
    """(N, feature_dim(params)) float32 features for frame times `times` (seconds), in `params_layout` order.

    Deltas run over the sequence of frames given, so pass all the frames of a clip at once. With
    `params.phones` or `params.words`, the phone shares are `phones` ((N, 40 per kind), from a stream's
    PhoneBlocks) or, when None, decoded from `samples` (which then start at the speech's first sample:
    shares_of). With `params.whisper`, the encoder's states are `states` ((N, 384), from a stream's
    WhisperBlocks or WhisperWindows) or, when None, encoded from `samples` (which then start at the speech's
    first sample)."""
    times = np.asarray(times, np.float64)
    if times.ndim != 1:
        raise ValueError(f"times must be 1-D, got shape {times.shape}")
    if len(times) == 0:
        return np.zeros((0, feature_dim(params)), np.float32)
    # A decoder glitch must not turn into NaN features for the whole clip.
    samples = np.nan_to_num(np.asarray(samples, np.float32).reshape(-1), posinf=0.0, neginf=0.0)
    static = _static(samples, sample_rate, times, params)
    deltas = _deltas(static)
    n = params.n_mfcc
    if phones is None:
        shares = shares_of(samples, sample_rate, times, phone_kinds(params))
    else:
        shares = np.asarray(phones, np.float32)
    if not params.whisper:
        states = np.zeros((len(times), 0), np.float32)
    elif states is None:
        encoded = window_states if params.whisper == "window" else whisper_states
        states = encoded(samples, sample_rate, times)
    states = np.asarray(states, np.float32)
    return np.concatenate([static[:, :n], deltas[:, :n], shares, states, static[:, n:], deltas[:, n:]], 1)
