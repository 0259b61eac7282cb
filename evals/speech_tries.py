"""Tries of what the LSTM hears and how it learns, each measured on the people it never heard.

    python -m evals.speech_tries [--try NAME ...] [--list]

On the real-voices corpus of evals/speech.py (built there; its split: HELD_OUT never trained on, Obama's
first 80 % trained on and his last 20 % measured), each try trains the stage's network
(models/networks/lstm.py: AudioToLips, Adam on the MSE of z-scored lips, params.yaml's lstm batch size
and learning rate) in-process on inputs the frame table does not hold. Nothing about the held-out people
chooses anything: the epochs (at most MAX_EPOCHS, looked at every EVERY) are those after which a dev third
of the *training* people (by a hash of their name) is followed best when the rest trains; then the try
trains on every training person for that many epochs and is measured on HELD_OUT and on Obama's later 20 %
with the figures of evals/speech.py (models/training/speakers.py: speaker_scores, after the alignment a
render makes). One JSON line per try on stdout, then a markdown table; per-person figures on stderr.

The settings a try combines (TRIES names them):
- inputs: `mfcc` (the paper's 28-D audio), `energy` (its log energy and delta alone), `utterance` (the
  same standardised over each clip: whose voice and which microphone cancel out), `phones`
  (tasks/rows/phones.py: PocketSphinx phone shares, 40 more), `visemes` (the same summed into the 12 groups
  of lstm.phone_classes visemes: models/networks/lstm.py), `cmn` (the cepstra less their mean over each
  clip), `augment` (copies of the training speech with pitch shift, reverberation, noise, gain);
- targets: `speaker` (each video's lips less their own mean, lstm.targets), `speakerz` (and over their own
  std) or `corpus`; `balance`: every training person's frames weigh as much in the loss as another's;
- `dropout`, `input_noise` (Gaussian, on the standardised inputs, while training), `context`, `hidden`;
- `ensemble`: the mean of that many models trained from different seeds;
- `sync`: each training clip's own lag between speech and mouth taken off before the final training
  (models/training/sync.py: lstm.sync_folds folds of the people, each clip's lag found by a model trained
  on the other folds).
- `person`: who speaks, heard as one more input (a one-hot of the training people), left out of that
  share of the training windows and for every person not trained on, so the model learns a mouth for an
  unknown voice and, for a person it knows (Obama), that person's own.
- `shape`: the lips' motion beside the opening scaled by what the same fold models earn on it for people
  they never heard (models/training/shape.py), as a render does with the stage's LSTM.
- `words` (inputs): the phones of the words PocketSphinx hears (tasks/rows/phones.py: word_phone_track),
  summed into the viseme groups; `live`: measured as a live stream hears it, the phone loop's groups in the
  words' place; `live_mix`: that share of the training windows hears them so too.
- `whisper` (inputs): Whisper tiny.en's 384 encoder states (tasks/rows/whisper.py), as they are;
  `whisper_window`: the same of 2-s windows as a stream could encode them (evals/speech_inputs.py).
- `readout`: `ridge` (the tries named `ridge+...`), a linear map of the inputs over the LSTM's window in
  its place, or `mix` (`...+linear`), the mean of that and the LSTM (evals/readout.py), the linear map
  hearing `linear_inputs` when the setting names them (`...+linear_window`: Whisper's windowed states).
The inputs are made once per corpus and kept (evals/speech_inputs.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from evals.readout import MIX_WEIGHT, RIDGE_WEIGHTS, Predict, fit_ridge, mixed
from evals.speech import HELD_OUT, OBAMA, SOURCES, WORK, build, corpus_sources, say
from evals.speech_inputs import Inputs, features
from models.networks.lstm import VISEMES, AudioToLips, window_index
from models.records import LipsStats, Shape
from models.training.data import Corpus, load_corpus
from models.training.lips import lips_moments
from models.training.shape import shape_gain
from models.training.speakers import output_stats, speaker_scores
from models.training.split import Split, speaker_of, split_corpus
from models.training.sync import fold_fits, fold_offsets, in_sync
from tasks.config.params import Params
from tasks.config.params_loader import load_params

MAX_EPOCHS, EVERY = 20, 5
REG = {"targets": "speaker", "dropout": 0.5, "input_noise": 0.3}  # speaker-centred lips, regularised
SYNCED = {**REG, "hidden": 64, "sync": True}
SHAPED = {**SYNCED, "shape": True}
LINEAR = {"targets": "speaker", "sync": True, "shape": True, "readout": "ridge"}  # evals/readout.py
TRIES = {
    "paper": {"inputs": ["mfcc"], "targets": "corpus"},
    "utterance": {"inputs": ["utterance"], "targets": "corpus"},
    "speaker": {"inputs": ["mfcc"], "targets": "speaker"},
    "speaker+reg": {"inputs": ["mfcc"], **REG},
    "speaker+reg+context10": {"inputs": ["mfcc"], **REG, "context": 10},
    "phones": {"inputs": ["mfcc", "phones"], "targets": "corpus"},
    "speaker+reg+phones": {"inputs": ["mfcc", "phones"], **REG},
    "speaker+reg+phones+energy": {"inputs": ["energy", "phones"], **REG},
    "speaker+reg+phones+context10": {"inputs": ["mfcc", "phones"], **REG, "context": 10},
    "speaker+reg+phones+hidden64": {"inputs": ["mfcc", "phones"], **REG, "hidden": 64},
    "speaker+reg+phones+hidden128": {"inputs": ["mfcc", "phones"], **REG, "hidden": 128},
    "speaker+reg+phones+hidden64+sync": {"inputs": ["mfcc", "phones"], **SYNCED},
    "speaker+reg+phones+hidden64+sync+shape": {"inputs": ["mfcc", "phones"], **SHAPED},
    "speaker+reg+phones+hidden64+sync+shape+utterance": {"inputs": ["utterance", "phones"], **SHAPED},
    "speaker+reg+phones+hidden64+sync+shape+cmn": {"inputs": ["cmn", "phones"], **SHAPED},
    "speakerz+reg+phones+hidden64+sync+shape": {"inputs": ["mfcc", "phones"], **SHAPED,
                                               "targets": "speakerz"},
    "speaker+reg+phones+hidden64+sync+shape+ensemble3": {"inputs": ["mfcc", "phones"], **SHAPED,
                                                        "ensemble": 3},
    "speaker+reg+phones+hidden64+sync+shape+balance": {"inputs": ["mfcc", "phones"], **SHAPED,
                                                      "balance": True},
    "speaker+reg+visemes+hidden64+sync+shape": {"inputs": ["mfcc", "visemes"], **SHAPED},
    "speaker+reg+phones+visemes+hidden64+sync+shape": {"inputs": ["mfcc", "phones", "visemes"], **SHAPED},
    "speaker+reg+visemes+hidden64+sync+shape+context8": {"inputs": ["mfcc", "visemes"], **SHAPED,
                                                         "context": 8},
    "speaker+reg+visemes+hidden32+sync+shape": {"inputs": ["mfcc", "visemes"], **SHAPED, "hidden": 32},
    "speaker+reg+visemes+hidden64+sync+shape+balance": {"inputs": ["mfcc", "visemes"], **SHAPED,
                                                        "balance": True},
    "speaker+reg+visemes+hidden64+sync+shape+person": {"inputs": ["mfcc", "visemes"], **SHAPED,
                                                       "person": 0.3},
    "speaker+reg+visemes+whisper+hidden64+sync+shape": {"inputs": ["mfcc", "visemes", "whisper"], **SHAPED},
    "speaker+reg+visemes+words+whisper+hidden64+sync+shape": {
        "inputs": ["mfcc", "visemes", "words", "whisper"], **SHAPED},
    "speaker+reg+words+hidden64+sync+shape": {"inputs": ["mfcc", "words"], **SHAPED},
    "speaker+reg+visemes+words+hidden64+sync+shape": {"inputs": ["mfcc", "visemes", "words"], **SHAPED},
    "speaker+reg+visemes+words+hidden64+sync+shape+live": {"inputs": ["mfcc", "visemes", "words"], **SHAPED,
                                                            "live": True},
    "speaker+reg+visemes+words+hidden64+sync+shape+mix": {"inputs": ["mfcc", "visemes", "words"], **SHAPED,
                                                           "live_mix": 0.5},
    "speaker+reg+visemes+words+hidden64+sync+shape+mix+live": {"inputs": ["mfcc", "visemes", "words"],
                                                                **SHAPED, "live_mix": 0.5, "live": True},
    "speaker+reg+augment": {"inputs": ["mfcc"], **REG, "augment": 2},
    "speaker+reg+sync": {"inputs": ["mfcc"], **REG, "sync": True},
    "speaker+reg+ensemble3": {"inputs": ["mfcc"], **REG, "ensemble": 3},
    "ridge+visemes+sync+shape": {"inputs": ["mfcc", "visemes"], **LINEAR},
    "ridge+visemes+whisper+sync+shape": {"inputs": ["mfcc", "visemes", "whisper"], **LINEAR},
    "ridge+visemes+words+whisper+sync+shape": {"inputs": ["mfcc", "visemes", "words", "whisper"], **LINEAR},
    "ridge+visemes+whisper_window+sync+shape": {"inputs": ["mfcc", "visemes", "whisper_window"], **LINEAR},
    "speaker+reg+visemes+whisper_window+hidden64+sync+shape": {
        "inputs": ["mfcc", "visemes", "whisper_window"], **SHAPED},
    "speaker+reg+visemes+hidden64+sync+shape+linear": {"inputs": ["mfcc", "visemes"], **SHAPED,
                                                       "readout": "mix"},
    "speaker+reg+visemes+hidden64+sync+shape+linear_window": {
        "inputs": ["mfcc", "visemes"], **SHAPED, "readout": "mix",
        "linear_inputs": ["mfcc", "visemes", "whisper_window"]},
    "speaker+reg+visemes+hidden64+sync+shape+linear_window_third": {
        "inputs": ["mfcc", "visemes"], **SHAPED, "readout": "mix",
        "linear_inputs": ["mfcc", "visemes", "whisper_window"], "linear_share": 1 / 3},
    "speaker+reg+visemes+hidden64+sync+shape+linear_window_3e5": {
        "inputs": ["mfcc", "visemes"], **SHAPED, "readout": "mix",
        "linear_inputs": ["mfcc", "visemes", "whisper_window"], "linear_weight": 3e5},
    "speaker+reg+visemes+whisper+hidden64+sync+shape+linear": {"inputs": ["mfcc", "visemes", "whisper"],
                                                               **SHAPED, "readout": "mix"},
}


def fit(setting: dict, train: dict[str, np.ndarray], inputs: Inputs, corpus: Corpus, params: Params,
        epochs: int, seed: int = 0, shifts: dict[str, int] | None = None,
        dev: Callable[[Predict], float] | None = None) -> tuple[Predict, list[float]]:
    """A model trained on the frames `train` names (per video) for `epochs`; (its predictor, dev's figure
    after every EVERY epochs when `dev` is given)."""
    context, shifts = setting.get("context", params.lstm.context), shifts or {}
    xs, windows, ys, offset, whose = [], [], [], 0, []
    for k in range(1 + setting.get("augment", 0)):
        for v in corpus.videos:
            rows = train.get(v.video_id)
            if rows is None or v.video_id not in inputs.copy(k) or not (rows & v.face_found).any():
                continue
            frames = np.flatnonzero(rows & v.face_found)
            lips = v.lips[frames] - (v.lips[frames].mean(0) if setting["targets"] != "corpus" else 0)
            if setting["targets"] == "speakerz":  # and over their own std: every mouth's motion at one scale
                lips = lips / np.maximum(lips.std(0), 1e-4) * 0.01
            heard = np.clip(frames + shifts.get(v.video_id, 0), 0, len(v) - 1)
            xs.append(features(inputs.copy(k)[v.video_id], setting))
            windows.append(window_index(len(v), context)[heard] + offset)
            ys.append(lips)
            whose.extend([speaker_of(v.video_id, params)] * len(lips))
            offset += len(v)
    x, y = np.concatenate(xs), np.concatenate(ys)
    x_mean, x_std = x.mean(0), np.maximum(x.std(0), 1e-6)
    people = sorted({speaker_of(v, params) for v in train}) if setting.get("person") else []

    def who(video: str, frames: int) -> np.ndarray:  # (frames, people): the person's one-hot, 0 if unknown
        code = np.zeros((frames, len(people)), np.float32)
        if speaker_of(video, params) in people and video in train:
            code[:, people.index(speaker_of(video, params))] = 1
        return code

    if people:
        codes = [who(v.video_id, len(v)) for k in range(1 + setting.get("augment", 0)) for v in corpus.videos
                 if (r := train.get(v.video_id)) is not None and v.video_id in inputs.copy(k)
                 and (r & v.face_found).any()]
        x = np.concatenate([x, np.concatenate(codes)], 1)
        x_mean, x_std = np.r_[x_mean, np.zeros(len(people))], np.r_[x_std, np.ones(len(people))]
    lips_mean = np.concatenate([v.lips[r & v.face_found] for v in corpus.videos
                                if (r := train.get(v.video_id)) is not None]).mean(0)
    y_std = np.maximum(y.std(0), 1e-6)
    y_mean = 0 if setting["targets"] != "corpus" else lips_mean
    audio = torch.from_numpy(((x - x_mean) / x_std).astype(np.float32))
    words = slice(x.shape[1] - len(VISEMES), x.shape[1]) if "words" in setting["inputs"] else None
    if setting.get("live_mix"):  # the words' columns as live hears them: the phone loop's, on their scale
        loop = slice(words.start - len(VISEMES), words.start)
        standing_in = audio.clone()
        standing_in[:, words] = torch.from_numpy(((x[:, loop] - x_mean[words]) / x_std[words])
                                                 .astype(np.float32))
    index = torch.from_numpy(np.concatenate(windows))
    target = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
    counts = {name: whose.count(name) for name in set(whose)}
    weight = torch.tensor([len(whose) / len(counts) / counts[name] for name in whose], dtype=torch.float32)
    if not setting.get("balance"):
        weight = torch.ones_like(weight)
    torch.manual_seed(params.seed + seed)
    model = AudioToLips(features=x.shape[1], hidden=setting.get("hidden", params.lstm.hidden),
                        bidirectional=params.lstm.bidirectional, dropout=setting.get("dropout", 0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lstm.lr)

    def predict(video: str) -> np.ndarray:
        parts = inputs.copy(0)[video]
        if setting.get("live"):  # live speech has no words: the phone loop's phones heard in their place
            parts = {**parts, "words": parts["phones"]}
        heard_x = features(parts, setting)
        if people:
            heard_x = np.concatenate([heard_x, who(video, len(heard_x))], 1)
        x_in = (heard_x - x_mean) / x_std
        with torch.no_grad():
            windows = torch.from_numpy(window_index(len(x_in), context))
            heard = torch.from_numpy(x_in.astype(np.float32))[windows]
            out = model(heard)
        return out.numpy() * y_std + lips_mean

    curve = []
    for epoch in range(epochs):
        model.train()
        for batch in torch.randperm(len(target)).split(params.lstm.batch_size):
            heard = audio[index[batch]]
            if setting.get("live_mix"):  # that share of the windows hears the words as live does
                live = torch.rand(len(batch)) < setting["live_mix"]
                heard[live] = standing_in[index[batch][live]]
            heard = heard + setting.get("input_noise", 0.0) * torch.randn_like(heard)
            if people:  # who speaks: kept in 1 - person of the windows, noiseless
                known = (torch.rand(len(batch), 1, 1) >= setting["person"]).float()
                heard[..., -len(people):] = audio[index[batch]][..., -len(people):] * known
            loss = ((model(heard) - target[batch]) ** 2).mean(1).mul(weight[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if dev is not None and (epoch + 1) % EVERY == 0:
            model.eval()
            curve.append(dev(predict))
    model.eval()
    return predict, curve


def trained(setting: dict, train: dict[str, np.ndarray], inputs: Inputs, corpus: Corpus, params: Params,
            epochs: int, seed: int = 0, shifts: dict[str, int] | None = None,
            dev: Callable[[Predict], float] | None = None) -> tuple[Predict, list[float]]:
    """`fit`, or with the setting's `readout` the linear one of evals/readout.py: `ridge` (dev's curve over
    its RIDGE_WEIGHTS in the place of the epochs'; `epochs` picks the weight of that place) or `mix`."""
    if setting.get("readout") is None:
        return fit(setting, train, inputs, corpus, params, epochs, seed, shifts, dev)
    at = fit_ridge({**setting, "inputs": setting.get("linear_inputs", setting["inputs"])}, train, inputs,
                   corpus, params, shifts)
    if setting["readout"] == "ridge":
        if dev is None:
            return at(RIDGE_WEIGHTS[min(epochs // EVERY, len(RIDGE_WEIGHTS)) - 1]), []
        curve = [dev(at(weight)) for weight in RIDGE_WEIGHTS]
        return at(RIDGE_WEIGHTS[int(np.argmax(curve))]), curve
    linear, share = at(setting.get("linear_weight", MIX_WEIGHT)), setting.get("linear_share", 0.5)
    lstm, curve = fit(setting, train, inputs, corpus, params, epochs, seed, shifts,
                      None if dev is None else lambda predict: dev(mixed(linear, predict, share)))
    return mixed(linear, lstm, share), curve


def ensemble(setting: dict, train: dict[str, np.ndarray], inputs: Inputs, corpus: Corpus, params: Params,
             epochs: int, shifts: dict[str, int] | None = None) -> Predict:
    models = [trained(setting, train, inputs, corpus, params, epochs, seed, shifts)[0]
              for seed in range(setting.get("ensemble", 1))]
    return lambda video: np.mean([m(video) for m in models], 0)


def by_audio(predict: Predict, corpus: Corpus, videos: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The predictor as models/training/speakers.py calls one: on a video's audio column."""
    lips = {id(corpus.video(v).audio): predict(v) for v in videos}
    return lambda audio: lips[id(audio)]


def scores(predict: Predict, corpus: Corpus, videos: list[str], params: Params,
           measured: dict[str, np.ndarray] | None = None, output: LipsStats | None = None,
           shape: Shape | None = None) -> tuple[dict, list[dict]]:
    """speaker_scores of the predictor on `videos`, the lip statistics of the training people as the
    corpus's (what the bound keeps lips near), `output` and `shape` its own (LstmArtifact's)."""
    trained = [v.lips[v.face_found] for v in corpus.videos if v.video_id not in HELD_OUT]
    stats = lips_moments(np.concatenate(trained))
    return speaker_scores(by_audio(predict, corpus, videos), [corpus.video(v) for v in videos], params, stats,
                          int(corpus.meta["face_size"]), list(corpus.meta["lip_indices"]), measured, output,
                          shape)


def sync_shifts(setting: dict, train: dict[str, np.ndarray], inputs: Inputs, corpus: Corpus, params: Params,
                epochs: int) -> tuple[dict[str, int], float]:
    """(each training clip's own offset between speech and mouth, the shape gain), found as the stage
    finds them (models/training/sync.py: lstm.sync_folds folds of the people, each measured by this try's
    model trained on the others; models/training/shape.py, with `shape` in the setting, else 1)."""
    def fitted(others: Split) -> tuple[Callable[[np.ndarray], np.ndarray], None]:
        predict, _ = trained(setting, {v: r for v, r in others.train.items() if r.any()}, inputs, corpus,
                             params, epochs)
        return by_audio(predict, corpus, list(train)), None

    rows = {v.video_id: train.get(v.video_id, np.zeros(len(v), bool)) for v in corpus.videos}
    split = Split("speaker", rows, {v: np.zeros_like(r) for v, r in rows.items()})
    fits = fold_fits(corpus, split, params, fitted)
    offsets = fold_offsets(fits, corpus, split, params)
    gain = shape_gain(fits, in_sync(corpus, offsets), split, params) if setting.get("shape") else 1.0
    return offsets, gain


def by_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def run_try(name: str, setting: dict, corpus: Corpus, params: Params, inputs: Inputs) -> dict:
    split = split_corpus(corpus, params)
    train = {v: rows for v, rows in split.train.items() if rows.any()}
    people = sorted({speaker_of(v, params) for v in train if v != OBAMA}, key=by_hash)
    dev_videos = [v for v in train if speaker_of(v, params) in set(people[::3])]
    started = time.perf_counter()
    seen: list[dict] = []  # the dev third's figures, each time dev is asked

    def dev(predict: Predict) -> float:
        seen.append(scores(predict, corpus, dev_videos, params)[0])
        return seen[-1]["mouth_open_r"]

    _, curve = trained(setting, {v: r for v, r in train.items() if v not in dev_videos}, inputs, corpus,
                       params, MAX_EPOCHS, dev=dev)
    epochs = EVERY * (int(np.argmax(curve)) + 1)
    on_dev = seen[int(np.argmax(curve))]
    chosen = time.perf_counter()
    shifts, gain = {}, 1.0
    if setting.get("sync"):
        shifts, gain = sync_shifts(setting, train, inputs, corpus, params, epochs)
    shape = Shape(gain, tuple(corpus.meta["lip_indices"]))
    predict = ensemble(setting, train, inputs, corpus, params, epochs, shifts)
    done = time.perf_counter()
    output = output_stats(by_audio(predict, corpus, list(train)), corpus, split.train, params)
    held, per_person = scores(predict, corpus, HELD_OUT, params, output=output, shape=shape)
    # his clip as the try trained on it: moved by its own offset when the try syncs (evals/speech.py too)
    synced = in_sync(corpus, shifts)
    obama, _ = scores(predict, synced, [OBAMA], params, {OBAMA: split.val[OBAMA]}, output, shape)
    for row in per_person:
        say(f"speech tries: {name} " + json.dumps({k: v if isinstance(v, str) else round(v, 3)
                                                    for k, v in row.items()}))
    return {"try": name, **{k: round(v, 3) for k, v in held.items()},
            **{f"obama_{k}": round(v, 3) for k, v in obama.items()}, "dev_mouth_open_r": round(max(curve), 3),
            "dev_lmd_px": round(on_dev["lmd_px"], 3),
            "epochs": epochs, "train_seconds": round(done - chosen, 1),
            "choose_seconds": round(chosen - started, 1)}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.speech_tries",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--try", dest="tries", action="append", choices=list(TRIES), help="default: all")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = parser().parse_args(argv)
    work = WORK / "real"
    project = build(work, corpus_sources(work, SOURCES, False), {})
    torch.set_num_threads(2)
    params, corpus = load_params(project.params), load_corpus(project.shards)
    inputs = Inputs(corpus, project.videos, params, work / "tries")
    rows = []
    for name in args.tries or list(TRIES):
        rows.append(run_try(name, TRIES[name], corpus, params, inputs))
        print(json.dumps(rows[-1]), flush=True)
    columns = ["try", "mouth_open_r", "lmd_px", "amp", "sync_offset_frames", "obama_mouth_open_r",
               "obama_lmd_px", "dev_mouth_open_r", "epochs", "train_seconds"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
