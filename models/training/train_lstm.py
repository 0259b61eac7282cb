"""Train audio -> lips (models/networks/lstm.py) on the frame table. The DVC stage `train_lstm`:

    python -m models.training.train_lstm [--root .] [--params params.yaml] [--override lstm.epochs=3 ...]

Reads paths.shards, logs every epoch to paths.live_dir("lstm") (train_loss, val_loss, lmd_px,
mouth_open_r; baseline_* once: the "predict the train mean" model; held_out_mouth_open_r when videos are
held out whole, and at the end every held_out_* figure of models/training/speakers.py, baselines
included, for the weights kept), keeps a resumable
checkpoint in paths.checkpoint_dir("lstm") / last.pt and writes the best epoch's weights, with the stats
needed to use them, to paths.lstm (models/artifacts.py: LstmArtifact), each under
--root (tasks/config/paths.py).
A rerun with the same params and data resumes from the checkpoint; raising lstm.epochs
continues a finished run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from models.artifacts import LstmArtifact
from models.common import autocast, code_digest, finite_or_none, pick_device, run_key, seed_everything
from models.networks.lstm import AudioToLips, heard_features, linear_lips, lstm_heard, predict_lips
from models.records import LinearLips
from models.training.data import Corpus, LipsWindows, audio_stats, lips_stats, load_corpus, speaker_means
from models.training.linear import fit_linear
from models.training.lip_metrics import lip_metrics
from models.training.run import TrainingRun, epoch_line, made_from
from models.training.shape import shape_gain
from models.training.speakers import held_out_scores, output_stats
from models.training.split import Split, split_corpus
from models.training.sync import fold_fits, fold_offsets, in_sync
from tasks.config.entry import (
    DEFAULT_ROOT,
    Lstm,
    Overrides,
    ParamsFile,
    Root,
    Shards,
    run,
    stage_params,
    stage_paths,
)
from tasks.config.params import LstmParams, Params


@dataclass
class LipsData:
    """Both splits as LipsWindows on the device (a few MB), and the train stats they are normalised with."""

    train: LipsWindows
    val: LipsWindows
    audio_mean: np.ndarray
    audio_std: np.ndarray
    lips_mean: np.ndarray
    lips_std: np.ndarray
    # (val frames, LIPS_DIM) z-scored as val's lips: the linear map's, which `evaluate` mixes in (its share)
    val_linear: torch.Tensor | None = None
    linear_share: float = 0.0


def lips_data(corpus: Corpus, split: Split, p: LstmParams, device: torch.device) -> LipsData:
    """Both splits normalised with the stats of the train split only, the audio as the LSTM hears it
    (lstm.phone_classes: models/networks/lstm.py: lstm_heard). With lstm.targets "speaker", each
    video's lips less their own mean (its train frames', else its val frames': data.speaker_mean)."""
    layout = list(corpus.meta.get("feature_layout", []))
    corpus = replace(corpus, videos=[replace(v, audio=lstm_heard(v.audio, layout, p.phone_classes))
                                     for v in corpus.videos])
    stats = (*audio_stats(corpus, split.train), *lips_stats(corpus, split.train, p.targets))
    centre = speaker_means(corpus, split) if p.targets == "speaker" else None
    train = LipsWindows(corpus, split.train, p.context, *stats, centre=centre).to(device)
    val = LipsWindows(corpus, split.val, p.context, *stats, centre=centre).to(device)
    return LipsData(train, val, *stats)


def with_linear(data: LipsData, linear: LinearLips | None, corpus: Corpus, split: Split,
                p: LstmParams) -> None:
    """`data` given the linear map's lips of its val frames (in LipsWindows' order), so that the val
    figures are of the lips the artifact asks for (models/networks/lstm.py: predict_lips)."""
    if linear is None:
        return
    layout, val = list(corpus.meta.get("feature_layout", [])), []
    for v in corpus.videos:
        frames = np.flatnonzero(split.val[v.video_id] & v.face_found)
        if len(frames):
            lips = linear_lips(linear, heard_features(v.audio, layout, p.phone_classes), p.context)[frames]
            val.append((lips - data.lips_mean) / data.lips_std)
    device = data.val.lips.device
    data.val_linear = torch.from_numpy(np.concatenate(val).astype(np.float32)).to(device) if val else None
    data.linear_share = linear.share


def baseline_figures(model, data: LipsData, meta: dict, device: torch.device, use_amp: bool) -> dict:
    """The "predict the train mean" baseline's val_loss and lmd_px (keys baseline_*), said in one line."""
    baseline = evaluate(model, data, meta, device, use_amp, predict_mean=True)
    print(f"lstm: baseline (predict the train mean) val_loss {baseline['val_loss']:.4f} "
          f"lmd_px {baseline['lmd_px']:.2f}")
    return {f"baseline_{key}": baseline[key] for key in ("val_loss", "lmd_px")}


def mixed_in(corpus: Corpus, split: Split, params: Params, data: LipsData) -> LinearLips | None:
    """The linear map of the training frames (fit_linear), its val lips given to `data` (with_linear)."""
    linear = fit_linear(corpus, split.train, params)
    with_linear(data, linear, corpus, split, params.lstm)
    if linear is not None:
        print(f"lstm: {linear.share:g} of the lips from a linear map of {len(linear.mean)} features over the "
              f"window (models/training/linear.py)")
    return linear


def lstm_step(model, optimizer, scaler, audio: torch.Tensor, lips: torch.Tensor, device: torch.device,
              use_amp: bool, input_noise: float = 0.0) -> torch.Tensor:
    """One Adam step on the MSE of z-scored lips (the standardised features with Gaussian noise of std
    `input_noise` added); returns the batch loss."""
    if input_noise:
        audio = audio + input_noise * torch.randn_like(audio)
    with autocast(device, use_amp):
        loss = F.mse_loss(model(audio).float(), lips)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def train_epoch(model, optimizer, scaler, data: LipsData, p: LstmParams, device: torch.device,
                use_amp: bool) -> float:
    """One pass over the train split in random batches; the mean loss per frame."""
    model.train()
    total, count = 0.0, 0
    for index in torch.randperm(len(data.train), device=device).split(p.batch_size):
        audio, lips = data.train[index]
        loss = lstm_step(model, optimizer, scaler, audio, lips, device, use_amp, p.input_noise)
        total, count = total + loss.item() * len(index), count + len(index)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model, data: LipsData, meta: dict, device: torch.device, use_amp: bool,
             predict_mean: bool = False) -> dict:
    """val_loss on z-scored lips, and the lip metrics on lips in [0, 1] of the crop (what they are
    defined on), of the LSTM's lips mixed with the linear map's as the artifact mixes them (with_linear).
    predict_mean: the baseline that always predicts the train mean (z-score 0)."""
    model.eval()
    predicted = []
    for index in torch.arange(len(data.val), device=device).split(1024):
        audio, lips = data.val[index]
        if predict_mean:
            predicted.append(torch.zeros_like(lips))
        else:
            with autocast(device, use_amp):
                predicted.append(model(audio).float())
    predicted = torch.cat(predicted)
    if data.val_linear is not None and not predict_mean:
        predicted = data.linear_share * data.val_linear + (1 - data.linear_share) * predicted
    metrics = {"val_loss": F.mse_loss(predicted, data.val.lips).item()}
    predicted_lips = predicted.cpu().numpy() * data.lips_std + data.lips_mean
    true_lips = data.val.lips.cpu().numpy() * data.lips_std + data.lips_mean
    metrics.update(lip_metrics(predicted_lips, true_lips, meta["face_size"], meta["lip_indices"]))
    return metrics


def train(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None, override: Overrides = None,
          shards: Shards = None, lstm: Lstm = None) -> None:
    """Train audio -> lips (models/networks/lstm.py) on the frame table: the DVC stage train_lstm.
    `--lstm`: where the artifact goes."""
    paths = stage_paths(root, shards=shards, lstm=lstm)
    params = stage_params(params_file or paths.params, override)
    p = params.lstm
    device = pick_device(params.device)
    use_amp = p.amp and device.type == "cuda"
    seed_everything(params.seed)

    corpus = load_corpus(paths.shards)
    split = split_corpus(corpus, params)
    fingerprint = corpus.fingerprint()
    corpus, offsets, gain = synced(corpus, split, params, device)
    data = lips_data(corpus, split, p, device)
    print(f"lstm: {len(data.train)} train / {len(data.val)} val frames, split by {split.by}, on {device}")
    linear = mixed_in(corpus, split, params, data)

    hparams = AudioToLips.hparams(p, features=data.train.audio.shape[1])
    model = AudioToLips(**hparams).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    # A checkpoint is resumed only when made from the same params, data and code (this module's and all
    # it imports, also when run as __main__) and the same sync offsets; more epochs extend a run.
    key = run_key(p.model_dump(exclude={"epochs"}), params.split.model_dump(), params.seed,
                  fingerprint, offsets, code_digest(__spec__.name))
    training = TrainingRun("lstm", key, {"model": model, "optimizer": optimizer, "scaler": scaler},
                           paths, epochs=p.epochs)
    best = training.restored("best", {"val_loss": float("inf"), "epoch": -1, "state_dict": None})
    rng = training.restored("rng")
    if rng is not None:
        torch.set_rng_state(rng)

    training.summarise({"sync_offsets": offsets, "shape_gain": gain,
                        **baseline_figures(model, data, corpus.meta, device, use_amp)})
    # By speaker, val_loss mostly says whose lips they are, which no speech tells: the last epoch is kept.
    keep_last = split.by == "speaker"
    for epoch in range(training.start_epoch, p.epochs):
        started = time.perf_counter()
        metrics = {"train_loss": train_epoch(model, optimizer, scaler, data, p, device, use_amp),
                   **evaluate(model, data, corpus.meta, device, use_amp),
                   **speaker_figures(model, hparams, data, corpus, split, params, gain, linear,
                                     baselines=False)}
        if keep_last or metrics["val_loss"] < best["val_loss"]:
            snapshot = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best = {"val_loss": metrics["val_loss"], "epoch": epoch + 1, "state_dict": snapshot}
        training.log(epoch, metrics, summary={"best_epoch": best["epoch"], "best_val_loss": best["val_loss"]})
        training.save(epoch, rng=torch.get_rng_state(), best=best)
        print(epoch_line("lstm", epoch, p.epochs, metrics, started))

    if best["state_dict"] is not None:
        model.load_state_dict(best["state_dict"])
    held_out = speaker_figures(model, hparams, data, corpus, split, params, gain, linear)
    training.summarise({name: finite_or_none(value) for name, value in held_out.items()})
    if held_out:
        print("lstm: held-out videos, aligned as a render aligns: " + json.dumps(held_out))
    artifact = lstm_artifact(model, hparams, data, corpus, split, params, best, gain, linear)
    training.finish(artifact, paths.lstm)
    print(f"lstm: wrote {paths.lstm} (epoch {best['epoch']}, val_loss {best['val_loss']:.4f})")


def synced(corpus: Corpus, split: Split, params: Params,
           device: torch.device) -> tuple[Corpus, dict[str, int], float]:
    """(the corpus with each training video's lips moved by its sync offset, the offsets, the shape gain):
    models/training/sync.py with fitted LSTMs, and what the same LSTMs earn on the lips' shape of the
    videos they never heard, once in sync (models/training/shape.py); the RNGs seeded again after, so the
    training that follows starts as it would without them."""
    fits = fold_fits(corpus, split, params, lambda others: fitted(corpus, others, params, device))
    offsets = fold_offsets(fits, corpus, split, params)
    corpus = in_sync(corpus, offsets)
    gain = shape_gain(fits, corpus, split, params)
    seed_everything(params.seed)
    if offsets:
        moved = " ".join(f"{v} {k:+d}" for v, k in sorted(offsets.items()) if k) or "none, all in sync"
        print(f"lstm: training videos' lips moved by their sync offsets (frames, lstm.sync_folds "
              f"{params.lstm.sync_folds}): {moved}")
    if gain != 1:
        print(f"lstm: the lips' shape beside the opening is trusted with a gain of {gain:.3f} "
              f"(models/training/shape.py)")
    return corpus, offsets, gain


def fitted(corpus: Corpus, split: Split, params: Params, device: torch.device):
    """(a predictor of raw lips, its output stats): an LSTM trained in-process on split.train for
    lstm.epochs epochs, the last kept, with no checkpoint and no log, and its linear map (fit_linear) as
    the stage's has (models/training/sync.py measures each video's offset with such a model that never
    heard it)."""
    p = params.lstm
    data = lips_data(corpus, split, p, device)
    hparams = AudioToLips.hparams(p, features=data.train.audio.shape[1])
    model = AudioToLips(**hparams).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for _ in range(p.epochs):
        train_epoch(model, optimizer, scaler, data, p, device, False)
    last = {"epoch": p.epochs, "val_loss": 0.0}
    artifact = lstm_artifact(model, hparams, data, corpus, split, params, last,
                             linear=fit_linear(corpus, split.train, params))
    return (lambda audio: predict_lips(model, artifact, audio)), artifact.output_stats


def speaker_figures(model: AudioToLips, hparams: dict, data: LipsData, corpus: Corpus, split: Split,
                    params: Params, gain: float = 1.0, linear: LinearLips | None = None,
                    baselines: bool = True) -> dict:
    """On the videos held out whole (split.held_out(): by speaker, people never heard), the lips a render
    asks for measured against theirs (models/training/speakers.py), keys prefixed held_out_; with
    `baselines`, also the loudness_ and mean_ baselines'. {} when no video is held out whole."""
    held_out = sorted(split.held_out())
    if not held_out:
        return {}
    model.eval()
    artifact = lstm_artifact(model, hparams, data, corpus, split, params,
                             {"epoch": 0, "val_loss": float("nan")}, gain, linear)
    predict = lambda audio: predict_lips(model, artifact, audio)
    scores = held_out_scores(predict, corpus, split.train, held_out, params, baselines,
                             output=artifact.output_stats, shape=artifact.shape)
    return {f"held_out_{name}": value for name, value in scores.items()}


def lstm_artifact(model: AudioToLips, hparams: dict, data: LipsData, corpus: Corpus, split: Split,
                  params: Params, best: dict, gain: float = 1.0,
                  linear: LinearLips | None = None) -> LstmArtifact:
    """The model's weights (in eval mode) and everything needed to use them (models/networks/lstm.py:
    predict_lips), with the statistics of what it predicts for its training speech (output_stats), the
    shape gain it is trusted with (`gain`: models/training/shape.py) and the linear map mixed in."""
    model.eval()
    artifact = LstmArtifact(
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        hparams=hparams,
        context=params.lstm.context,
        audio_mean=data.audio_mean, audio_std=data.audio_std,
        lips_mean=data.lips_mean, lips_std=data.lips_std,
        face_size=int(corpus.meta["face_size"]),
        feature_layout=list(corpus.meta.get("feature_layout", [])), phone_classes=params.lstm.phone_classes,
        epoch=best["epoch"], val_loss=best["val_loss"], shape_gain=gain, linear=linear,
        **made_from(params.lstm, corpus, split),
    )
    predict = lambda audio: predict_lips(model, artifact, audio)
    artifact.output_stats = output_stats(predict, corpus, split.train, params)
    return artifact


def main(argv: list[str] | None = None) -> None:
    run(train, argv)


if __name__ == "__main__":
    main()
