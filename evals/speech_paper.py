"""The paper's experiment on real Obama (`python -m evals.speech --obama`): trained on the first 80 % of one
weekly address, alone or with the other people of the real-voices corpus, measured on its last 20 %, as
the paper measured on held-out addresses; and the paper's grid (its Tables 1-2: uni/bi x 1/2 layers x
dropout 0/0.3/0.5) trained on Obama alone, for as many steps as the run on everyone. Each run is the
ordinary train_lstm stage in a run folder of its own (evals/speech.py: train); Obama alone is a project of
his clip alone (WORK/obama), split by time, put in sync by the shipped base LSTM (models/training/sync.py:
one person) and measured so. A markdown table on stdout.
"""

from __future__ import annotations

import hashlib
import itertools
import json

from evals.speech import OBAMA, WORK, build, say, train
from models.networks.lstm import load_lstm, predict_lips
from models.training.data import Corpus, load_corpus
from models.training.speakers import held_out_scores
from models.training.split import split_corpus
from models.training.sync import in_sync
from tasks.config.params import Params
from tasks.config.params_loader import load_params, parse_override
from tasks.config.paths import REAL_FIXTURES, Paths

GRID = {"lstm.bidirectional": [False, True], "lstm.layers": [1, 2], "lstm.dropout": [0.0, 0.3, 0.5]}
KEYS = ("mouth_open_r", "lmd_px", "sync_offset_frames", "amp")


def obama_project(overrides: dict | None = None) -> tuple[Paths, Corpus, Params]:
    """A project of Obama's address alone (WORK/obama, its frame table made once; with `overrides` of the
    params, a folder of their own), split by time: his first 80 % trains, his last 20 % is measured."""
    overrides = overrides or {}
    key = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    work = WORK / ("obama" if not overrides else f"obama-{key}")
    sources = WORK / "obama-sources.txt"
    sources.write_text(f"{REAL_FIXTURES.resolve() / f'{OBAMA}.mp4'}\n")
    alone = {"split.by": "time", "split.held_out": [], "split.speakers": {}, "split.by_time": []}
    project = build(work, sources, {**overrides, **alone})
    return project, load_corpus(project.shards), load_params(project.params)


def obama_run(project: Paths, corpus: Corpus, name: str, overrides: list[str]) -> dict:
    """The stage trained in runs/NAME with `overrides`; his later figures (obama_*, baselines too)."""
    lstm, seconds, metrics = train(project.root / "runs" / name, project, overrides)
    corpus = in_sync(corpus, metrics.get("sync_offsets", {}))  # his clip as the stage trained on it
    params = load_params(project.params, dict(map(parse_override, overrides)))
    split = split_corpus(corpus, params)
    model, artifact = load_lstm(lstm)
    scores = held_out_scores(lambda audio: predict_lips(model, artifact, audio), corpus, split.train, [OBAMA],
                             params, measured={OBAMA: split.val[OBAMA]}, output=artifact.output_stats,
                             shape=artifact.shape)
    return {**{f"obama_{k}": v for k, v in scores.items()}, "train_seconds": round(seconds, 1),
            "sync_frames": metrics.get("sync_offsets", {}).get(OBAMA)}


def alone_epochs(corpus: Corpus, params: Params, epochs: int) -> int:
    """Epochs over Obama's 80 % alone that take as many steps as `epochs` over every training person (his
    80 % is a twentieth of them)."""
    split = split_corpus(corpus, params)
    frames = {v.video_id: int((split.train[v.video_id] & v.face_found).sum()) for v in corpus.videos}
    alone = max(epochs, round(epochs * sum(frames.values()) / max(frames[OBAMA], 1)))
    say(f"speech: Obama alone, {frames[OBAMA]} frames, {alone} epochs (the steps of the run on everyone)")
    return alone


def obama_alone(corpus: Corpus, params: Params, epochs: int, overrides: dict | None = None) -> dict:
    """The paper's setting with params.yaml's lstm section (and `overrides` of the params): trained on
    Obama's first 80 % alone for the steps of `epochs` over everyone, measured on his last 20 %; keys
    obama_alone_* (his baselines obama_alone_loudness_*, fitted on his 80 %, and obama_alone_mean_*)."""
    epochs = alone_epochs(corpus, params, epochs)
    project, corpus, _ = obama_project(overrides)
    scores = obama_run(project, corpus, "obama-alone", [f"lstm.epochs={epochs}"])
    return {key.replace("obama_", "obama_alone_", 1): value for key, value in scores.items()
            if key.startswith("obama_")}


def obama_experiment(project: Paths, corpus: Corpus, params: Params, epochs: int,
                     overrides: dict | None = None) -> list[dict]:
    """The paper's grid trained on Obama alone for as many steps as `epochs` over every training person
    take: Obama's later figures, his baselines, a markdown table."""
    epochs = alone_epochs(corpus, params, epochs)
    project, corpus, params = obama_project(overrides)
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        name = "obama-" + "-".join(f"{key.split('.')[1]}{value}" for key, value in setting.items())
        overrides = [f"lstm.epochs={epochs}", *(f"{key}={value}" for key, value in setting.items())]
        scores = obama_run(project, corpus, name, overrides)
        rows.append({**setting, **{k: scores.get(f"obama_{k}") for k in KEYS},
                     "loudness_mouth_open_r": scores.get("obama_loudness_mouth_open_r"),
                     "loudness_lmd_px": scores.get("obama_loudness_lmd_px"),
                     "mean_lmd_px": scores.get("obama_mean_lmd_px"),
                     "sync_frames": scores["sync_frames"], "train_seconds": scores["train_seconds"]})
        say("speech: obama grid " + json.dumps(rows[-1]))
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        cells = (f"{v:.3f}" if isinstance(v, float) and k not in GRID else str(v) for k, v in row.items())
        print("| " + " | ".join(cells) + " |")
    return rows
