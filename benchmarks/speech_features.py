"""What each kind of audio feature costs a render, as seconds of speech made per second of wall time.

    python -m benchmarks.speech_features [SPEECH]   # default: the real fixtures' RD_Radio31_000.wav

Prints one JSON object, all measured in this run on the same speech (best of 3 after a warm-up, torch on
2 threads): `seconds` of speech, then per kind the real-time factor (speech seconds / wall seconds; above 1
is faster than real time) of what tasks/rows/features.py makes for it: `mfcc_rtf`, the paper's 28
(the naive baseline: every frame a window, FFT and mel); `phones_rtf`, PocketSphinx's phone loop
(`preprocess.phones`, the default); `words_rtf`, its words aligned to their phones (`preprocess.words`);
`whisper_rtf`, Whisper tiny.en's encoder over 30-s blocks (`preprocess.whisper: true`, tasks/rows/whisper.py),
and `whisper_block_seconds`, one 30-s block's encoding; `whisper_window_rtf`, its 2-s windows every 0.2 s
(`preprocess.whisper: window`, the default: tasks/rows/whisper.py, WhisperWindows), against
`naive_window_rtf`, the same windows encoded one by one with the mel bands projected by numpy (what
WhisperWindows did before: numpy's BLAS threads then spin beside torch's, on 2 cores). A render pays
the defaults' cost (MFCC, phones, windows).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import torch

from tasks.config.params import PreprocessParams
from tasks.config.paths import REAL_FIXTURES
from tasks.rows.decode import read_audio
from tasks.rows.features import audio_features
from tasks.rows.whisper import HOP as MEL_HOP
from tasks.rows.whisper import (
    HOP_S,
    LOOKAHEAD_S,
    N_FFT,
    WIDTH,
    WINDOW_S,
    _mel_filters,
    block_states,
    encode,
    states_at,
    window_states,
)

RATE = 16000


def best_of(run: Callable[[], object], tries: int = 3) -> float:
    run()  # warm-up: torch, librosa and the decoders set themselves up
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def naive_windows(samples: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The states of WhisperWindows at `times`, each window encoded alone, its log-mel made with numpy."""
    wanted = np.maximum(1, np.ceil((times + LOOKAHEAD_S) / HOP_S - 1e-9)).astype(np.int64)
    out = np.zeros((len(times), WIDTH), np.float32)
    for k in np.unique(wanted):
        lo, hi = round(max(0.0, k * HOP_S - WINDOW_S) * RATE), round(k * HOP_S * RATE)
        heard = np.pad(samples[lo:hi], (0, max(0, hi - lo - len(samples[lo:hi]))))
        spectrum = librosa.stft(heard, n_fft=N_FFT, hop_length=MEL_HOP, window="hann", center=True,
                                pad_mode="reflect")
        mel = np.log10(np.maximum(_mel_filters() @ (np.abs(spectrum[:, :-1]) ** 2), 1e-10))
        mel = ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)
        out[wanted == k] = states_at(encode(mel), times[wanted == k] - lo / RATE)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speech_features", description=__doc__)
    parser.add_argument("speech", nargs="?", type=Path, default=REAL_FIXTURES / "RD_Radio31_000.wav")
    args = parser.parse_args(argv)
    if not args.speech.is_file():
        raise SystemExit(f"{args.speech}: no such speech file")
    torch.set_num_threads(2)
    samples = read_audio(args.speech, RATE)
    seconds = len(samples) / RATE
    times = np.arange(int(seconds * 30)) / 30
    plain = PreprocessParams(phones=False, whisper=False)
    base = best_of(lambda: audio_features(samples, RATE, times, plain))
    kinds = {"phones": PreprocessParams(whisper=False), "words": PreprocessParams(phones=False, words=True,
                                                                                  whisper=False),
             "whisper": PreprocessParams(phones=False, whisper=True),
             "whisper_window": PreprocessParams(phones=False, whisper="window")}
    result = {"speech": args.speech.name, "seconds": round(seconds, 2), "mfcc_rtf": round(seconds / base, 1)}
    for name, params in kinds.items():
        wall = best_of(lambda p=params: audio_features(samples, RATE, times, p)) - base
        result[f"{name}_rtf"] = round(seconds / max(wall, 1e-6), 1)
    result["whisper_block_seconds"] = round(best_of(lambda: block_states(samples[: 30 * RATE], RATE)), 3)
    result["naive_window_rtf"] = round(seconds / best_of(lambda: naive_windows(samples, times)), 1)
    np.testing.assert_allclose(naive_windows(samples, times), window_states(samples, RATE, times), atol=1e-3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
