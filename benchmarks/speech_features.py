"""What each kind of audio feature costs a render, as seconds of speech made per second of wall time.

    python -m benchmarks.speech_features [SPEECH]   # default: the real fixtures' RD_Radio31_000.wav

Prints one JSON object, all measured in this run on the same speech (best of 3 after a warm-up, torch on
2 threads): `seconds` of speech, then per kind the real-time factor (speech seconds / wall seconds; above 1
is faster than real time) of what tasks/rows/features.py makes for it: `mfcc_rtf`, the paper's 28
(the naive baseline: every frame a window, FFT and mel); `phones_rtf`, PocketSphinx's phone loop
(`preprocess.phones`, the default); `words_rtf`, its words aligned to their phones (`preprocess.words`);
`whisper_rtf`, Whisper tiny.en's encoder over 30-s blocks (`preprocess.whisper`, tasks/rows/whisper.py),
and `whisper_block_seconds`, one 30-s block's encoding. A render pays the default's cost plus the
setting's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tasks.config.params import PreprocessParams
from tasks.config.paths import REAL_FIXTURES
from tasks.rows.decode import read_audio
from tasks.rows.features import audio_features
from tasks.rows.whisper import block_states

RATE = 16000


def best_of(run: Callable[[], object], tries: int = 3) -> float:
    run()  # warm-up: torch, librosa and the decoders set themselves up
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


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
    plain = PreprocessParams(phones=False)
    base = best_of(lambda: audio_features(samples, RATE, times, plain))
    kinds = {"phones": PreprocessParams(), "words": PreprocessParams(phones=False, words=True),
             "whisper": PreprocessParams(phones=False, whisper=True)}
    result = {"speech": args.speech.name, "seconds": round(seconds, 2), "mfcc_rtf": round(seconds / base, 1)}
    for name, params in kinds.items():
        wall = best_of(lambda p=params: audio_features(samples, RATE, times, p)) - base
        result[f"{name}_rtf"] = round(seconds / max(wall, 1e-6), 1)
    result["whisper_block_seconds"] = round(best_of(lambda: block_states(samples[: 30 * RATE], RATE)), 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
