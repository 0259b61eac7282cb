"""Speaker-independent phone features: PocketSphinx's English acoustic model, which ships in its wheel,
decodes speech into phones (allphone search over its phone language model: the approach of Rhubarb Lip
Sync), and each video frame gets the share of each phone in the PHONE_WINDOW_S around its time.

Phones are what a mouth does, whoever speaks: the MFCC also say whose voice it is. evals/speech_tries.py
measures them as an input of the LSTM (ARCHITECTURE.md, Metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

# The acoustic model's phone set; anything else it outputs (noise models) counts as silence.
PHONES = ("SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
          "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
          "V", "W", "Y", "Z", "ZH")
MODEL_RATE = 16000  # the acoustic model's sample rate
STEP_S = 0.01  # PocketSphinx's frame step
PHONE_WINDOW_S = 0.03  # a video frame's phones: those within this of its time, either side


def _decoder():
    from pocketsphinx import Config, Decoder, get_model_path

    model = Path(get_model_path()) / "en-us"
    config = Config(lm=None, hmm=str(model / "en-us"), allphone=str(model / "en-us-phone.lm.bin"),
                    beam=1e-20, pbeam=1e-20, lw=2.0, loglevel="ERROR")
    return Decoder(config)


def phone_track(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ceil(seconds / STEP_S) + 1,) int8: the index into PHONES of the phone at each 10 ms step."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    if sample_rate != MODEL_RATE:
        samples = resample_poly(samples, MODEL_RATE, sample_rate).astype(np.float32)
    track = np.zeros(len(samples) * 100 // MODEL_RATE + 1, np.int8)
    if not len(samples):
        return track
    decoder = _decoder()
    decoder.start_utt()
    pcm = (np.clip(np.nan_to_num(samples), -1, 1) * 32767).astype(np.int16)
    decoder.process_raw(pcm.tobytes(), False, True)
    decoder.end_utt()
    index = {name: i for i, name in enumerate(PHONES)}
    for segment in decoder.seg():
        track[segment.start_frame : segment.end_frame + 1] = index.get(segment.word, 0)
    return track


def phone_features(track: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), len(PHONES)) float32: per time (seconds), the share of each phone of `track` within
    PHONE_WINDOW_S of it (rows sum to 1)."""
    onehot = np.eye(len(PHONES), dtype=np.float32)[np.asarray(track, np.int64)]
    totals = np.concatenate([np.zeros((1, len(PHONES)), np.float32), np.cumsum(onehot, 0)])
    times = np.asarray(times, np.float64)
    lo = np.clip(np.round((times - PHONE_WINDOW_S) / STEP_S).astype(np.int64), 0, len(track) - 1)
    hi = np.maximum(np.clip(np.round((times + PHONE_WINDOW_S) / STEP_S).astype(np.int64) + 1, 1, len(track)),
                    lo + 1)
    return (totals[hi] - totals[lo]) / (hi - lo)[:, None]
