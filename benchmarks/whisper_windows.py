"""What a live stream would hear of Whisper: each moment's encoder state from a window of speech that ends
a lookahead after it, against the state the whole 30-s block gives it (what files and the LSTM hear).

    python -m benchmarks.whisper_windows [AUDIO] [--window S ...] [--lookahead-ms MS] [--every S]

AUDIO defaults to obama_30s.mp4 of the real fixtures (tasks/config/paths.py: REAL_FIXTURES; without them it
stops in one line), its first 29 s, one block. For each window length, windows end every --every seconds;
the states --lookahead-ms before each window's end (over one --every) are compared with the block's states
of the same moments by their cosine, averaged. The yardstick in the same run: the block's states against
its own states that far apart in time (`apart_cosine`). One JSON line per window on stdout, then one with
the yardstick; `encode_ms` is one window's encoding (tasks/rows/whisper.py: encode, the torch threads
given). Whisper's states hear the future as well as the past, so a stream that cannot wait for it hears
other states than a file does (docs/results.md, Real voices).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tasks.config.paths import require_real_fixtures
from tasks.rows.decode import read_audio
from tasks.rows.whisper import BLOCK_S, RATE, STATE_S, block_states, encode, log_mel

SPEECH = "obama_30s.mp4"  # of the real fixtures


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.whisper_windows",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", type=Path, nargs="?", help=f"default: {SPEECH} of the real fixtures")
    parser.add_argument("--window", type=float, action="append", help="seconds (default: 2, 4 and 8)")
    parser.add_argument("--lookahead-ms", type=float, default=200.0)
    parser.add_argument("--every", type=float, default=0.2, help="seconds between windows' ends")
    return parser


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The mean over rows of the cosine between rows of `a` and `b`."""
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def windowed(samples: np.ndarray, block: np.ndarray, window: float, lookahead: float, every: float) -> dict:
    """The mean cosine between windows' states `lookahead` s before their ends and the block's, and the
    time one window takes to encode."""
    step = round(every / STATE_S)
    last = round((window - lookahead) / STATE_S)  # the window's state just past what it is asked for
    found, took = [], []
    for end in np.arange(window, len(samples) / RATE + 1e-9, every):
        first = round((end - window) / STATE_S)
        started = time.perf_counter()
        states = encode(log_mel(samples[round((end - window) * RATE) : round(end * RATE)]))
        took.append(time.perf_counter() - started)
        found.append(cosine(states[last - step : last], block[first + last - step : first + last]))
    return {"window_s": window, "lookahead_ms": round(lookahead * 1000),
            "cosine": round(float(np.mean(found)), 3), "windows": len(found),
            "encode_ms": round(float(np.median(took)) * 1000, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    args = parser().parse_args(argv)
    audio = args.audio or require_real_fixtures() / SPEECH
    samples = read_audio(audio, RATE)[: (BLOCK_S - 1) * RATE]
    torch.set_num_threads(1)
    block = block_states(samples, RATE)
    lookahead = args.lookahead_ms / 1000
    rows = [windowed(samples, block, window, lookahead, args.every)
            for window in args.window or [2.0, 4.0, 8.0]]
    apart = round(lookahead / STATE_S)  # the yardstick: the block's own states that far apart
    rows.append({"apart_s": round(lookahead, 3),
                 "apart_cosine": round(cosine(block[:-apart], block[apart:]), 3)})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
