"""Does the mouth asked for open on the open vowels and shut on p, b, m? On the people evals/speech.py
holds out, with the LSTM it trained last:

    python -m evals.visemes

Each held-out person's speech goes through that LSTM and what a render does for a target (their own lips,
models/training/speakers.py), and PocketSphinx names the phone at every frame (tasks/rows/phones.py).
Per group of phones: the frames, and the mean opening there, asked for and their own, each in units of its
std from its mean over the clip. Needs the real fixtures (tasks/config/paths.py: REAL_FIXTURES).
"""

from __future__ import annotations

import argparse

import numpy as np

from evals.speech import (
    HELD_OUT,
    WORK,  # noqa: F401  where it writes (its project), as tests/test_evals.py reads
    trained_lstm,
)
from models.networks.lstm import load_lstm, predict_lips
from models.training.data import load_corpus
from models.training.lips import closed_lips, lips_moments, speaker_lips
from models.training.speakers import training_lips
from models.training.split import split_corpus
from tasks.config.params_loader import load_params
from tasks.rows.decode import read_audio
from tasks.rows.features import LOG_ENERGY
from tasks.rows.landmarks import lips_opening
from tasks.rows.phones import PHONES, phone_features, phone_track

GROUPS = {"p b m (lips shut)": {"P", "B", "M"}, "f v (lip to teeth)": {"F", "V"},
          "open vowels aa ae ah ao aw ay": {"AA", "AE", "AH", "AO", "AW", "AY"}, "silence": {"SIL"}}


def standard(values: np.ndarray, face: np.ndarray) -> np.ndarray:
    return (values - values[face].mean()) / values[face].std()


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="python -m evals.visemes", description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> dict:
    parser().parse_args(argv)
    project, lstm = trained_lstm()
    params, corpus = load_params(project.params), load_corpus(project.shards)
    model, artifact = load_lstm(lstm)
    split, indices, p = split_corpus(corpus, params), list(corpus.meta["lip_indices"]), params.preprocess
    stats = lips_moments(training_lips(corpus, split.train))
    found = {group: ([], []) for group in GROUPS}
    for video in HELD_OUT:
        v = corpus.video(video)
        face = v.face_found
        raw = predict_lips(model, artifact, v.audio)
        asked = speaker_lips(raw, params, lips_moments(v.lips[face]), stats, v.audio[:, LOG_ENERGY],
                             closed_lips(v.lips[face], indices), artifact.output_stats, artifact.shape)
        asked = standard(lips_opening(asked, indices), face)
        real = standard(lips_opening(np.nan_to_num(v.lips), indices), face)
        samples = read_audio(project.videos / f"{video}.mp4", p.sample_rate)
        phones = phone_features(phone_track(samples, p.sample_rate), np.arange(len(v)) / p.fps).argmax(1)
        for group, names in GROUPS.items():
            chosen = face & np.isin(phones, [PHONES.index(name) for name in names])
            found[group][0].extend(asked[chosen])
            found[group][1].extend(real[chosen])
    result = {}
    for group, (asked, real) in found.items():
        result[group] = {"frames": len(asked), "asked": float(np.mean(asked)), "real": float(np.mean(real))}
        print(f"{group:30s} frames {len(asked):4d}   opening asked {np.mean(asked):+.2f}   "
              f"their own {np.mean(real):+.2f}   (std from the clip's mean)")
    return result


if __name__ == "__main__":
    main()
