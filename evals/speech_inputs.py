"""The inputs a try of evals/speech_tries.py hears, per video of the real-voices corpus, made once and kept.

The MFCC of the frame table (`mfcc`; `energy`, `utterance` and `cmn` are made from it), PocketSphinx's phone
shares (`phones`; `visemes` sums them into lstm.phone_classes' groups), the phones of the words it hears
(`words`) and Whisper tiny.en's encoder states, of 30-s blocks as files hear them (`whisper`) or of short
windows as a stream hears them (`whisper_window`: tasks/rows/whisper.py, WhisperWindows), of the speech as
recorded (copy 0) and of altered copies of
the training speech (`augment`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evals.speech import HELD_OUT, say
from models.networks.lstm import heard_features
from models.training.data import Corpus
from tasks.config.params import Params
from tasks.rows.decode import read_audio
from tasks.rows.features import DELTA_LOG_ENERGY, LOG_ENERGY, audio_features
from tasks.rows.phones import PHONES, phone_features, phone_track, word_phone_track
from tasks.rows.whisper import whisper_states, window_states

PHONE_LAYOUT = [f"phone_{name}" for name in PHONES]


class Inputs:
    """Per video (and per augmented copy), the features a try can combine, made once and kept in `cache`."""

    def __init__(self, corpus: Corpus, videos: Path, params: Params, cache: Path):
        self.corpus, self.videos, self.params, self.cache = corpus, videos, params, cache
        cache.mkdir(parents=True, exist_ok=True)
        self.copies: dict[int, dict[str, dict[str, np.ndarray]]] = {}

    def copy(self, k: int) -> dict[str, dict[str, np.ndarray]]:
        """Copy 0: the speech as recorded; copy k > 0: the training videos' speech altered (seed k)."""
        if k not in self.copies:
            file = self.cache / f"inputs-{k}-{self.corpus.fingerprint()}.npz"
            if file.is_file():
                saved = np.load(file)
                parts = {tuple(name.split("/")): saved[name] for name in saved.files}
                self.copies[k] = {}
                for (video, part), value in parts.items():
                    self.copies[k].setdefault(video, {})[part] = value
                if any(LATER.keys() - made.keys() for made in self.copies[k].values()):  # a cache from before
                    self._add_later(k)
                    self._save(k, file)
            else:
                self.copies[k] = self._make(k)
                self._save(k, file)
        return self.copies[k]

    def _save(self, k: int, file: Path) -> None:
        np.savez(file, **{f"{v}/{p}": a for v, parts in self.copies[k].items() for p, a in parts.items()})

    def _samples(self, video: str, k: int, rng: np.random.Generator) -> np.ndarray:
        rate = self.params.preprocess.sample_rate
        samples = read_audio(self.videos / f"{video}.mp4", rate)
        return altered(samples, rate, rng) if k else samples

    def _add_later(self, k: int) -> None:
        """The parts of LATER a cache made before them lacks."""
        p, rng = self.params.preprocess, np.random.default_rng(k)
        for v in self.corpus.videos:
            if v.video_id in self.copies[k]:
                samples = self._samples(v.video_id, k, rng)
                times = np.arange(len(v)) / p.fps
                for part in LATER.keys() - self.copies[k][v.video_id].keys():
                    self.copies[k][v.video_id][part] = LATER[part](samples, p.sample_rate, times)

    def _make(self, k: int) -> dict[str, dict[str, np.ndarray]]:
        # `mfcc`: the paper's 28 (the frame table's audio less its phones, which `phones` adds when asked).
        p = self.params.preprocess.model_copy(update={"phones": False, "words": False, "whisper": False})
        rng, made = np.random.default_rng(k), {}
        for v in self.corpus.videos:
            if k and v.video_id in HELD_OUT:
                continue
            samples = self._samples(v.video_id, k, rng)
            times = np.arange(len(v)) / p.fps
            made[v.video_id] = {"mfcc": audio_features(samples, p.sample_rate, times, p),
                                "phones": phone_features(phone_track(samples, p.sample_rate), times),
                                "words": phone_features(word_phone_track(samples, p.sample_rate), times),
                                **{part: make(samples, p.sample_rate, times) for part, make in LATER.items()}}
            say(f"speech tries: inputs of {v.video_id} (copy {k})")
        return made


def altered(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Another voice in another room: pitch +-3 semitones, reverberation (RT60 0.15-0.6 s), noise at
    10-30 dB SNR, gain 0.3-1.5."""
    import librosa

    samples = librosa.effects.pitch_shift(samples, sr=rate, n_steps=float(rng.uniform(-3, 3)))
    length = int(rng.uniform(0.15, 0.6) * rate)
    response = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)
    response[0] = 1.0
    samples = np.convolve(samples, response / np.sqrt(np.abs(response).sum()))[: len(samples)]
    power = np.mean(samples**2)
    samples = samples + rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (rng.uniform(10, 30) / 10))
    return (samples * rng.uniform(0.3, 1.5)).astype(np.float32)


# parts made after the first caches: added to a cache that lacks them
LATER = {"whisper": whisper_states, "whisper_window": window_states}


def features(parts: dict[str, np.ndarray], setting: dict) -> np.ndarray:
    """(frames, D) the inputs a try hears, before standardising over the training set."""
    mfcc = parts["mfcc"].astype(np.float32)
    if "energy" in setting["inputs"]:  # the loudness alone (log energy and its delta), no MFCC
        mfcc = mfcc[:, [LOG_ENERGY, DELTA_LOG_ENERGY]]
    if "utterance" in setting["inputs"]:
        mfcc = (mfcc - mfcc.mean(0)) / np.maximum(mfcc.std(0), 1e-3)
    if "cmn" in setting["inputs"]:  # the cepstra less their mean over each clip (energy left as it is)
        mfcc = np.concatenate([mfcc[:, :26] - mfcc[:, :26].mean(0), mfcc[:, 26:]], 1)
    # Whisper's states before the phone groups: the words' groups stay last (live_mix's columns in `fit`)
    extra = [parts[name].astype(np.float32) for name in ("whisper", "whisper_window")
             if name in setting["inputs"]]
    if "phones" in setting["inputs"]:
        extra.append(parts["phones"].astype(np.float32))
    if "visemes" in setting["inputs"]:  # the phone shares summed into groups, as lstm.phone_classes visemes
        extra.append(heard_features(parts["phones"].astype(np.float32), PHONE_LAYOUT, "visemes"))
    if "words" in setting["inputs"]:  # the same groups of the phones of the words decoded (word_phone_track)
        extra.append(heard_features(parts["words"].astype(np.float32), PHONE_LAYOUT, "visemes"))
    return np.concatenate([mfcc, *extra], 1)
