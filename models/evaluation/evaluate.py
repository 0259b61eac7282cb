"""Evaluate both models on the validation split, and the compositing. The DVC stage `evaluate`:

    python -m models.evaluation.evaluate [--root .] [--params params.yaml]
        [--override evaluate.max_frames=100 ...]

Every metric of ARCHITECTURE.md ("Metrics") on the split that training used, each beside
yardsticks: `baseline_mean` (the train mean lips for every frame, fed to the generator for its
metrics), `baseline_random` (lips of a random training frame; for sync_r the true lips shifted
by a random offset) and, for the compositing metrics, `baseline_paste` (the crop's box pasted
back, as Wav2Lip does; only `seam` is counted against it). `mean_face/*` adds a harder
reference for the image metrics, the mean training face shown for every frame; it is reported,
not counted. Writes paths.metrics (flat, so `dvc metrics show` reads the metric names),
paths.reports / mouth_opening.csv and .png (the sync clip: true, predicted and re-detected mouth
opening) and paths.reports / eval_grid.png (real over generated validation frames, then the generator
given random lips), and prints a table and which model metrics beat their baselines. A metric
that is undefined (a constant's r, no face found, no raw video to take speech from) is null.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import simplejpeg

from models.common import finite_or_none, seed_everything
from models.errors import RenderError
from models.evaluation.composite_metrics import composite_metrics
from models.evaluation.held_out import held_out_mouth
from models.evaluation.metrics import (
    beats_baselines,
    generator_obedience,
    image_metrics,
    lstm_metrics,
    sync_metric,
)
from models.evaluation.report import BASELINES, counted, print_table, write_plots
from models.networks.cgan import Frames, generate_faces
from models.networks.lstm import predict_lips
from models.networks.unet import chosen_references
from models.rendering import render
from models.rendering.layouts import references_of
from models.rendering.loading import Models, Target, load_models, models_stage, resolve_target
from models.rendering.speech import speech_lips
from models.training.data import Corpus, load_corpus, speaker_means
from models.training.lip_metrics import redetected_lmd
from models.training.split import Split, split_corpus
from tasks.config.entry import run
from tasks.config.params import Params
from tasks.config.paths import Paths
from tasks.config.progress import Progress
from tasks.rows.decode import read_audio
from tasks.rows.landmarks import landmarks_in_crops, lips_opening
from tasks.table.shards import evenly_spaced

GRID_COLUMNS = 8


def rows_with_face(corpus: Corpus, rows: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(v.video_id, np.flatnonzero(rows[v.video_id] & v.face_found)) for v in corpus.videos]


def random_train_lips(corpus: Corpus, split: Split, count: int, rng: np.random.Generator) -> np.ndarray:
    """Lips of `count` training frames drawn at random: a model that ignores the audio but moves."""
    lips = np.concatenate([corpus.video(i).lips[f] for i, f in rows_with_face(corpus, split.train)])
    return lips[rng.integers(0, len(lips), count)]


def evaluate_lstm(corpus: Corpus, split: Split, models: Models, rng: np.random.Generator) -> dict:
    """LSTM metrics over every validation frame with a face, computed as train_lstm does (its stats)."""
    artifact = models.lstm_artifact
    # An LSTM of lstm.targets "speaker" says how the mouth moves, not whose it is: its lips (and the mean
    # baseline's) are measured placed on the speaker's own mean mouth, as train_lstm measures them (a render
    # aligns them to a target).
    centres = speaker_means(corpus, split) if artifact.params.get("targets") == "speaker" else {}
    predicted, true, mean = [], [], []
    for video_id, frames in rows_with_face(corpus, split.val):
        if len(frames):
            video = corpus.video(video_id)
            lips = predict_lips(models.lstm, artifact, video.audio)[frames]
            if video_id in centres:  # the shift first: a lip coordinate that never moves stays exact
                lips = lips + (centres[video_id] - artifact.lips_mean)
            predicted.append(lips)
            true.append(video.lips[frames])
            mean.append(np.broadcast_to(centres.get(video_id, artifact.lips_mean), lips.shape))
    predicted, true, mean = np.concatenate(predicted), np.concatenate(true), np.concatenate(mean)
    def score(lips: np.ndarray) -> dict:
        return lstm_metrics(lips, true, artifact.lips_std, artifact.face_size, artifact.lip_indices)

    metrics = score(predicted)
    metrics.update({f"baseline_mean/{k}": v for k, v in score(mean).items()})
    random = random_train_lips(corpus, split, len(true), rng)
    metrics.update({f"baseline_random/{k}": v for k, v in score(random).items()})
    return metrics


def decode_faces(corpus: Corpus, picks: list[tuple[str, int]]) -> np.ndarray:
    return np.stack(
        [simplejpeg.decode_jpeg(corpus.video(i).faces[f].as_py(), colorspace="RGB") for i, f in picks]
    )


def spaced_frames(rows: list[tuple[str, np.ndarray]], count: int) -> list[tuple[str, int]]:
    frames = [(video_id, int(f)) for video_id, fs in rows for f in fs]
    return [frames[i] for i in evenly_spaced(len(frames), count)]


def own_frames(corpus: Corpus, models: Models, picks: list[tuple[str, int]],
               lips: np.ndarray) -> Frames | None:
    """What the frame generator paints into when corpus frames `picks` are driven by `lips`: their own
    crops and landmarks, each with the reference its video's crops give for its lips, never one of its
    neighbours (models/networks/unet.py: chosen_references); None for the noise generator."""
    artifact = models.cgan_artifact
    if artifact.condition != "frame":
        return None
    crops = decode_faces(corpus, picks)
    landmarks = np.stack([corpus.video(i).landmarks[f] for i, f in picks])
    chosen = np.empty_like(crops)
    videos, frames = np.array([i for i, _ in picks]), np.array([f for _, f in picks])
    for video_id in np.unique(videos):
        here, v = videos == video_id, corpus.video(str(video_id))
        bank = references_of(artifact, v.video_id, v.lips, v.face_found, v.faces, v.landmarks)
        chosen[here] = chosen_references(lips[here], bank, landmarks[here], artifact.lip_indices,
                                         artifact.warps_references, at=frames[here])
    return Frames(crops, landmarks, chosen)


def evaluate_generator(
    corpus: Corpus, split: Split, models: Models, params: Params, rng: np.random.Generator
) -> tuple[dict, np.ndarray]:
    """Generator metrics on up to evaluate.max_frames evenly spaced validation frames (the frame generator
    painting into each frame's own crop); also the eval grid."""
    artifact, lip_indices = models.cgan_artifact, models.cgan_artifact.lip_indices
    picks = spaced_frames(rows_with_face(corpus, split.val), params.evaluate.max_frames)
    real = decode_faces(corpus, picks)
    lips = np.stack([corpus.video(i).lips[f] for i, f in picks])

    def generate(asked: np.ndarray) -> np.ndarray:
        frames = own_frames(corpus, models, picks, asked)
        return generate_faces(models.generator, artifact, asked, frames=frames)

    generated = generate(lips)
    metrics = {**image_metrics(generated, real), **generator_obedience(generated, lips, lip_indices)}
    # dlib's own floor: the shards' lips came from dlib on the full frame; re-detected on the crop
    # they move this much
    floor = generator_obedience(real, lips, lip_indices)
    metrics.update({"real_lmd_px": floor["gen_lmd_px"], "real_face_found": floor["gen_face_found"]})

    # The baselines drive the same generator with lips that ignore the frame: the mean, or a random frame's.
    mean_lips = np.broadcast_to(models.lstm_artifact.lips_mean, lips.shape)
    random = generate(random_train_lips(corpus, split, len(lips), rng))
    for name, faces in (
        ("baseline_mean", generate(mean_lips)),
        ("baseline_random", random),
    ):
        metrics.update(
            {
                f"{name}/{k}": v
                for k, v in {
                    **image_metrics(faces, real),
                    **generator_obedience(faces, lips, lip_indices),
                }.items()
            }
        )

    train_picks = spaced_frames(rows_with_face(corpus, split.train), params.evaluate.max_frames)
    mean_face = decode_faces(corpus, train_picks).mean(0).round().astype(np.uint8)
    found = np.broadcast_to(landmarks_in_crops(mean_face[None], lip_indices), lips.shape)
    metrics.update(
        {f"mean_face/{k}": v for k, v in image_metrics(np.broadcast_to(mean_face, real.shape), real).items()}
    )
    metrics["mean_face/gen_lmd_px"] = redetected_lmd(found, lips, mean_face.shape[0])[0]

    columns = evenly_spaced(len(real), GRID_COLUMNS)
    grid = np.concatenate([np.concatenate(list(rows[columns]), axis=1) for rows in (real, generated, random)])
    return metrics, grid


def speech_file(videos: Path, video_id: str) -> Path | None:
    return next(iter(sorted(Path(videos).glob(f"{video_id}.*"))), None)


def evaluate_sync(
    corpus: Corpus, split: Split, target: Target, params: Params, videos: Path, rng: np.random.Generator
) -> tuple[dict, dict | None]:
    """sync_r on the first validation video with speech under `videos`: its audio rendered on the
    target face, the mouth opening dlib finds there against that video's true one. Returns the
    metrics and the clip's openings for the plots (None when no validation video has speech)."""
    found_speech = [(i, speech_file(videos, i)) for i in split.val_videos()]
    found_speech = [(i, path) for i, path in found_speech if path is not None]
    if not found_speech:
        print(
            f"evaluate: no speech for the validation videos {split.val_videos()} under {videos}: "
            "sync_r is null"
        )
        return {"sync_video": None, "sync_r": None, **{f"{b}/sync_r": None for b in BASELINES}}, None
    video_id, path = found_speech[0]
    pp, models = params.preprocess, target.models
    # The clip starts at the video's first validation frame (frame 0 unless split by time).
    start = int(np.flatnonzero(split.val[video_id])[0])
    end = min(start + round(params.evaluate.sync_seconds * pp.fps), len(corpus.video(video_id)))
    # A second past the end keeps the last frames' audio windows whole.
    samples = read_audio(path, pp.sample_rate)[: round((end / pp.fps + 1) * pp.sample_rate)]
    predicted = speech_lips(models, samples, pp.sample_rate, pp.fps, pp)[start:end]
    video = corpus.video(video_id)
    frames = len(predicted)
    true, has_face = video.lips[start : start + frames], video.face_found[start : start + frames]

    # The yardsticks go down the same path as the model's lips: aligned, smoothed, generated, re-detected.
    lstm_artifact, cgan_artifact = models.lstm_artifact, models.cgan_artifact
    filled = np.where(has_face[:, None], true, np.nanmean(true[has_face], axis=0))
    shift = int(rng.integers(frames // 4, max(frames // 4 + 1, 3 * frames // 4)))
    candidates = {
        "sync_r": predicted,
        "baseline_mean/sync_r": np.broadcast_to(lstm_artifact.lips_mean, predicted.shape),
        "baseline_random/sync_r": np.roll(filled, shift, axis=0),
    }
    metrics, generated_opening = {"sync_video": video_id}, None
    picks = [(video_id, frame) for frame in range(start, start + frames)]
    for name, lips in candidates.items():
        asked = render.clip_lips(target, params, lips)
        painted = own_frames(corpus, models, picks, asked)
        found = landmarks_in_crops(
            generate_faces(models.generator, cgan_artifact, asked, frames=painted), cgan_artifact.lip_indices
        )
        metrics[name] = sync_metric(
            found[has_face], true[has_face], cgan_artifact.face_size, cgan_artifact.lip_indices
        )
        if name == "sync_r":
            generated_opening = np.full(frames, np.nan)
            ok = ~np.isnan(found[:, 0])
            generated_opening[ok] = lips_opening(found[ok], cgan_artifact.lip_indices)
    lip_indices = lstm_artifact.lip_indices
    true_opening = np.where(has_face, lips_opening(np.nan_to_num(true), lip_indices), np.nan)
    clip = {
        "video_id": video_id,
        "true": true_opening,
        "predicted": lips_opening(predicted, lip_indices),
        "generated": generated_opening,
    }
    return metrics, clip


def evaluate_composite(target: Target, params: Params) -> dict:
    """The compositing metrics (models/evaluation/composite_metrics.py), null when the target's
    footage is absent."""
    try:
        return composite_metrics(target, params)
    except RenderError as exc:
        print(f"evaluate: {exc}: the compositing metrics are null")
        names = ("full_lmd_px", "full_face_found", "seam", "outside_psnr")
        return {f"{prefix}{name}": None for name in names for prefix in ("", "baseline_paste/")}


# What evaluate measures, in turn: the LSTM, the generator, the sync clip, the composite, the held-out mouth.
PARTS = 5


@models_stage
def evaluate(paths: Paths, params: Params) -> dict:
    """Evaluate both models on the validation split, and the compositing: the DVC stage evaluate.
    Writes the metrics and plots to <root>/reports."""
    seed_everything(params.seed)
    rng = np.random.default_rng(params.seed)
    models = load_models(paths.lstm, paths.cgan, params.device)
    corpus = load_corpus(paths.shards, faces=True)
    split = split_corpus(corpus, params)
    trained_on = models.lstm_artifact.val_videos
    if split.val_videos() != trained_on:
        raise ValueError(
            f"the validation videos {split.val_videos()} are not those the LSTM held out "
            f"({trained_on}): params or shards changed since training"
        )

    # its five parts, a bar on a terminal, else a line at least every 15 s (tasks/config/progress.py)
    with Progress("evaluate", stream=sys.stdout, units={"parts": "parts"}) as shown:
        shown("parts", 0, PARTS)
        metrics = evaluate_lstm(corpus, split, models, rng)
        shown("parts", 1, PARTS)
        generator_metrics, grid = evaluate_generator(corpus, split, models, params, rng)
        metrics.update(generator_metrics)
        shown("parts", 2, PARTS)
        target = resolve_target(paths, params, models=models, adapted_targets=False)
        sync, clip = evaluate_sync(corpus, split, target, params, paths.videos, rng)
        metrics.update(sync)
        shown("parts", 3, PARTS)
        metrics.update(evaluate_composite(target, params))
        shown("parts", 4, PARTS)
        metrics.update(held_out_mouth(models, paths.shards, next(iter(split.val_videos()), None)))
        shown("parts", PARTS, PARTS)
    metrics = {k: v if isinstance(v, str) else finite_or_none(v) for k, v in metrics.items()}

    paths.reports.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    write_plots(paths.reports, grid, clip)
    print_table(metrics, counted(beats_baselines(metrics, BASELINES)))
    print(f"evaluate: wrote {paths.metrics}")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    return run(evaluate, argv)


if __name__ == "__main__":
    main()
