"""Speech -> lips learned from real people and measured on people it never heard.

    python -m evals.speech [--work DIR] [--sources FILE] [--with-demo] [--epochs N] [--obama]
                           [--override KEY=VALUE ...]

The corpus: a project in --work (default .cache/speech/real, or .cache/speech/real+demo with --with-demo)
made from --sources (default data/sources/real_voices.txt: every clip of the real fixtures, 37 people,
tasks/config/paths.py: REAL_FIXTURES; without them it stops in one line) by flows/corpus.py with its
ROWS stages, `python -m flows.ingest` and `flows.preprocess` with --root, as `dvc repro` runs them (~2 min
on 2 cores, once; kept while the sources and the params those stages read are the same; --with-demo adds
the demo corpus's six espeak clips, tasks/demo/corpus.py, made beside --work). The split is
`split.by: speaker` with each clip's person in `split.speakers` (PEOPLE) and `split.held_out` the 8 people
of HELD_OUT (~55 s, 7 source repositories; never trained on, never used to choose anything); Obama
(`split.by_time`) is trained on the first 80 % of his weekly address and measured on the last 20 %, as the
paper measured on held-out addresses. The other 28 people (~5.5 min) are the training set.

The LSTM is trained by the ordinary stage (`python -m models.training.train_lstm --root RUN --shards ...`,
params.yaml's lstm section, a run folder of its own made afresh) for --epochs epochs, or, by default, for
the number of epochs that cross-validation over the *training* speakers picks (choose_epochs: 2 folds of
them held out in turn; the held-out people play no part in it). Then, on HELD_OUT, after the alignment a
render makes to each speaker (models/training/speakers.py): the LSTM's mouth_open_r, lmd_px,
sync_offset_frames, amp (the opening's swing over the speaker's own) and amp_min; the same prefixed
loudness_ (the opening an affine function of log energy, fitted on the training speakers) and mean_ (the
training mean); closed_gap and closed_std (crop px; their speech padded with 0.5-2 s silences: the mean
opening asked for in the silences less their own closed-mouth opening, and its std there); obama_* (the same
on his last 20 %, and obama_lag_frames, obama_mouth_open_r_at_lag: later_scores; his clip, as every training
clip, with its lips moved by the sync offset the stage found on his first 80 % with models that never heard
him, models/training/sync.py: `obama_sync_frames`); obama_alone_* (the paper's own setting: the same stage
with the same params trained on his first 80 % alone, as many steps, measured on his last 20 %, and his
baselines fitted on his 80 % alone: evals/speech_paper.py); shape_gain (how much of the lips' shape beside
the opening the LSTM is trusted with, models/training/shape.py); and train_seconds (the stage's wall time).
stderr has the per-speaker figures; the last line of stdout is one flat JSON object. --override applies to
the project's params (e.g. render.silence_db=0: no silence gate).

--obama also runs the paper's grid on Obama alone (evals/speech_paper.py);
evals/speech_tries.py measures other inputs (phones, per-utterance normalisation, augmentation, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from flows.corpus import ROWS, build_corpus
from models.common import finite_or_none
from models.networks.lstm import AudioToLips, load_lstm, predict_lips
from models.records import LipsStats, Shape
from models.training.data import Corpus, load_corpus
from models.training.linear import fit_linear
from models.training.lips import lips_moments
from models.training.speakers import (
    LoudnessLips,
    held_out_scores,
    silence_scores,
    speaker_scores,
    training_lips,
)
from models.training.split import Split, speaker_of, split_corpus
from models.training.sync import in_sync
from models.training.train_lstm import lips_data, lstm_artifact, train_epoch
from tasks.config.params import DemoParams, Params
from tasks.config.params_loader import load_params, parse_override
from tasks.config.paths import PROJECT_ROOT, Paths, require_real_fixtures
from tasks.rows.decode import read_audio
from tasks.table.shards import read_videos_table

SOURCES = PROJECT_ROOT / "data" / "sources" / "real_voices.txt"
WORK = PROJECT_ROOT / ".cache" / "speech"
# People never trained on, never used to choose a setting: 8 from 7 source repositories (SOURCES.md beside
# the fixtures), never Obama. The first four are the clips evals/realface.py measures faces on.
HELD_OUT = ["anchor_20s", "speaker_15s", "may_5s", "map_5s", "00086", "731200067", "short_chtf_4", "lbax4n"]
# The person of each clip with another clip of the same person, and Obama's (SOURCES.md's `person`
# column); every other clip is a person of its own.
PEOPLE = {"WDA_AlexandriaOcasioCortez_000": "aoc", "aoc_5s": "aoc", "ng_25s": "ng", "ng_27s": "ng",
          "li_10s": "li", "li_15s": "li", "li_7s": "li", "noem_18s": "noem", "short_chtf_2": "noem",
          "obama_30s": "obama"}
# The paper's own setting: trained on the first 80 % of one weekly address, measured on its last 20 %.
OBAMA = "obama_30s"
MAX_EPOCHS, FOLDS = 30, 2


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stage(module: str, root: Path, *extra: str) -> None:
    """One stage of the project at `root`, run as dvc.yaml runs it (from this checkout's root, so that the
    sources file's relative paths resolve), its output on stderr."""
    command = [sys.executable, "-m", module, "--root", str(root), *extra]
    say(f"speech: {' '.join(command[1:])}")
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, stdout=sys.stderr)


def corpus_sources(work: Path, sources: Path, with_demo: bool) -> Path:
    """The sources file the project is made from: `sources`, or a copy with the demo clips added, both
    made beside `work` (which a rebuild empties). Stops in one line when the real fixtures are missing (for
    the default sources) or a file it names is."""
    if not sources.is_file():
        raise SystemExit(f"{sources}: no such sources file")
    if sources.resolve() == SOURCES:
        require_real_fixtures()
    missing = [line for line in map(str.strip, sources.read_text().splitlines())
               if line and not line.startswith(("#", "http://", "https://"))
               and not (PROJECT_ROOT / line).is_file()]
    if missing:
        raise SystemExit(f"{sources}: {len(missing)} of its files are missing, e.g. {missing[0]}")
    if not with_demo:
        return sources.resolve()
    from tasks.demo.corpus import make_demo_corpus

    beside = work.parent / f"{work.name}-sources"
    clips = beside / "demo_clips"
    if not all((clips / f"demo_{i:02d}.mp4").is_file() for i in range(DemoParams().clips)):
        make_demo_corpus(clips, DemoParams())
    lines = [line.strip() for line in sources.read_text().splitlines() if line.strip()]
    real = [line if line.startswith("#") else str((PROJECT_ROOT / line).resolve()) for line in lines]
    written = beside / "sources.txt"
    written.write_text("\n".join(real + sorted(str(p) for p in clips.glob("demo_*.mp4"))) + "\n")
    return written


def build(work: Path, sources: Path, overrides: dict) -> Paths:
    """The project in `work`, ingested and preprocessed by flows/corpus.py unless it is already (its
    params.yaml is today's with `overrides` either way). A video that failed is tried once more."""
    settings = {"split.by": "speaker", "split.held_out": HELD_OUT, "split.speakers": PEOPLE,
                "split.by_time": [OBAMA], **overrides}
    paths = build_corpus(work, sources, settings, stages=ROWS)
    failed = failed_videos(paths)
    if failed:  # the rest are current and skipped
        stage("flows.preprocess", paths.root)
        failed = failed_videos(paths)
    if failed:
        raise SystemExit(f"{paths.videos_table}: {', '.join(failed)} failed to preprocess")
    return paths


def trained_lstm() -> tuple[Paths, Path]:
    """(the real-voices project, the LSTM `python -m evals.speech` trained last in it): what the figures
    and evals.visemes take; one line when the fixtures or that LSTM are missing."""
    require_real_fixtures()
    work = WORK / "real"
    project = build(work, corpus_sources(work, SOURCES, False), {})
    lstm = Paths.at(work / "runs" / "lstm").lstm
    if not lstm.is_file():
        raise SystemExit(f"{lstm}: no LSTM yet (run python -m evals.speech first)")
    return project, lstm


def failed_videos(paths: Paths) -> list[str]:
    return [row["video_id"] for row in read_videos_table(paths.shards) if row["status"] == "failed"]


def choose_epochs(corpus: Corpus, split: Split, params: Params) -> int:
    """The epochs (at most MAX_EPOCHS) after which the held-out speakers' mouth_open_r is highest, the mean
    over FOLDS folds of the *training* speakers, each held out in turn (sorted by a hash of their id)."""
    trained = [video for video, rows in split.train.items() if rows.any()]
    people = sorted({speaker_of(video, params) for video in trained},
                    key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    curves = []
    for fold in range(FOLDS):
        held = [video for video in trained if speaker_of(video, params) in people[fold::FOLDS]]
        train = {v: rows & (v not in held) for v, rows in split.train.items()}
        val = {v: np.full(len(rows), v in held) for v, rows in split.train.items()}
        curves.append(epoch_curve(corpus, Split("speaker", train, val), held, params))
        say(f"speech: fold {fold + 1}/{FOLDS} ({len(held)} training videos held out): mouth_open_r by epoch "
            + " ".join(f"{r:.2f}" for r in curves[-1]))
    return int(np.nanargmax(np.mean(curves, 0))) + 1


def epoch_curve(corpus: Corpus, split: Split, held: list[str], params: Params) -> list[float]:
    """mouth_open_r on `held` after each epoch of the stage's step (models/training/train_lstm.py)."""
    p, device = params.lstm, torch.device("cpu")
    torch.manual_seed(params.seed)
    data = lips_data(corpus, split, p, device)
    hparams = AudioToLips.hparams(p, features=data.train.audio.shape[1])
    model = AudioToLips(**hparams)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    curve, linear = [], fit_linear(corpus, split.train, params)  # the stage's mix, as it will measure it
    for epoch in range(MAX_EPOCHS):
        train_epoch(model, optimizer, scaler, data, p, device, False)
        model.eval()
        artifact = lstm_artifact(model, hparams, data, corpus, split, params,
                                 {"epoch": epoch + 1, "val_loss": float("nan")}, linear=linear)
        scores = held_out_scores(lambda audio, a=artifact: predict_lips(model, a, audio), corpus, split.train,
                                 held, params, baselines=False, output=artifact.output_stats)
        curve.append(scores["mouth_open_r"])
    return curve


def train(run: Path, project: Paths, overrides: list[str]) -> tuple[Path, float, dict]:
    """(the artifact, wall seconds, the stage's dvclive metrics): the stage run afresh in `run`."""
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copy(project.params, run / "params.yaml")
    started = time.perf_counter()
    stage("models.training.train_lstm", run, "--shards", str(project.shards),
           *itertools.chain.from_iterable(("--override", o) for o in overrides))
    paths = Paths.at(run)
    metrics = json.loads((paths.dvclive / "lstm" / "metrics.json").read_text())
    return paths.lstm, time.perf_counter() - started, metrics


def measure(lstm: Path, corpus: Corpus, split: Split, params: Params, project: Paths) -> dict:
    """The figures of the module docstring for the LSTM in `lstm` (train_seconds aside)."""
    model, artifact = load_lstm(lstm)
    predict = lambda audio: predict_lips(model, artifact, audio)
    held = sorted(split.held_out())
    output, shape = artifact.output_stats, artifact.shape
    scores = held_out_scores(predict, corpus, split.train, held, params, output=output, shape=shape)
    lip_indices, face_size = list(corpus.meta["lip_indices"]), int(corpus.meta["face_size"])
    stats = lips_moments(training_lips(corpus, split.train))
    videos = [corpus.video(v) for v in held]
    _, per_video = speaker_scores(predict, videos, params, stats, face_size, lip_indices, output=output,
                                  shape=shape)
    loudness = LoudnessLips.fit(corpus, split.train, lip_indices)
    _, per_loudness = speaker_scores(loudness, videos, params, stats, face_size, lip_indices)
    speech = {v: read_audio(project.videos / f"{v}.mp4", params.preprocess.sample_rate) for v in held}
    silence, per_silence = silence_scores(predict, speech, corpus, stats, params, params.seed, output, shape)
    for row, baseline, closed in zip(per_video, per_loudness, per_silence):
        row = {**row, **{f"loudness_{k}": v for k, v in baseline.items() if k != "video_id"}, **closed}
        say("speech: " + json.dumps({k: finite_or_none(v) if k != "video_id" else v for k, v in row.items()}))
    return {**scores, **silence, **later_scores(predict, corpus, split, params, output, shape),
            "shape_gain": artifact.shape_gain}


def later_scores(predict, corpus: Corpus, split: Split, params: Params, output: LipsStats | None,
                 shape: Shape | None = None) -> dict:
    """On the later part of the videos split.by_time names (Obama's last 20 %: the paper's held-out
    addresses), the figures of held_out_scores, baselines included, keys prefixed with the video's person
    (split.speakers: obama_mouth_open_r, ...); the mean over them when several are one person's.

    Also `<person>_lag_frames`, the lag between the mouth asked for and the real one on the video's
    *trained* part (a clip whose sound leads its picture, as Obama's does, is late by it wherever it is
    measured), and `<person>_mouth_open_r_at_lag`, the later part's r with the mouth moved by that lag: what
    the paper's one-speaker setting, which learns the speaker's own delay, would see."""
    figures: dict[str, list[float]] = {}
    lip_indices, face_size = list(corpus.meta["lip_indices"]), int(corpus.meta["face_size"])
    stats = lips_moments(training_lips(corpus, split.train))
    for video in params.split.by_time:
        measured, person = {video: split.val[video]}, speaker_of(video, params)
        scores = held_out_scores(predict, corpus, split.train, [video], params, measured=measured,
                                 output=output, shape=shape)
        _, trained = speaker_scores(predict, [corpus.video(video)], params, stats, face_size, lip_indices,
                                    {video: split.train[video]}, output, shape)
        lag = int(trained[0]["sync_offset_frames"])
        moved = held_out_scores(lambda audio, lag=lag: earlier(predict(audio), lag), corpus, split.train,
                                [video], params, baselines=False, measured=measured, output=output,
                                shape=shape)
        scores.update(lag_frames=lag, mouth_open_r_at_lag=moved["mouth_open_r"])
        for key, value in scores.items():
            figures.setdefault(f"{person}_{key}", []).append(value)
    return {key: float(np.mean(values)) for key, values in figures.items()}


def earlier(lips: np.ndarray, frames: int) -> np.ndarray:
    """`lips` moved `frames` earlier (later when negative), the ends held."""
    index = np.clip(np.arange(len(lips)) + frames, 0, len(lips) - 1)
    return lips[index]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.speech", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help=f"the corpus project (default: {WORK}/real, or "
                        f"{WORK}/real+demo with --with-demo)")
    parser.add_argument("--sources", type=Path, default=SOURCES, help="default: %(default)s")
    parser.add_argument("--with-demo", action="store_true", help="the demo corpus's clips in training too")
    parser.add_argument("--epochs", type=int, help="instead of choosing them by cross-validation")
    parser.add_argument("--obama", action="store_true",
                        help="also the paper's experiment: Obama alone, and the paper's grid on it")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    work = args.work or WORK / ("real+demo" if args.with_demo else "real")
    overrides = dict(map(parse_override, args.override))
    project = build(work, corpus_sources(work, args.sources, args.with_demo), overrides)
    torch.set_num_threads(2)
    params = load_params(project.params)
    corpus = load_corpus(project.shards)
    split = split_corpus(corpus, params)
    epochs = args.epochs or choose_epochs(corpus, split, params)
    say(f"speech: training on {len([v for v, r in split.train.items() if r.any()])} speakers for {epochs} "
        f"epochs; held out: {', '.join(sorted(split.held_out()))}")
    lstm, seconds, metrics = train(project.root / "runs" / "lstm", project, [f"lstm.epochs={epochs}"])
    corpus = in_sync(corpus, metrics.get("sync_offsets", {}))  # the training videos as the stage moved them
    frames = sum(int((rows & corpus.video(video).face_found).sum()) for video, rows in split.train.items())
    result = {**measure(lstm, corpus, split, params, project), "train_seconds": seconds, "epochs": epochs,
              "train_frames": frames, "silence_db": params.render.silence_db,
              "obama_sync_frames": metrics.get("sync_offsets", {}).get(OBAMA)}
    from evals.speech_paper import obama_alone, obama_experiment

    result.update(obama_alone(corpus, params, epochs, overrides))
    if args.obama:
        obama_experiment(project, corpus, params, epochs, overrides)
    result = {key: finite_or_none(v) if isinstance(v, float) else v for key, v in result.items()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
