"""Train audio -> lips (models/lstm.py) on the frame table. The DVC stage `train_lstm`:

    python -m models.train_lstm [--params params.yaml] [--override lstm.epochs=3 ...]

Reads data/shards, logs every epoch to dvclive/lstm (train_loss, val_loss, lmd_px,
mouth_open_r; baseline_* once: the "predict the train mean" model), keeps a resumable
checkpoint in checkpoints/lstm/last.pt and writes the best epoch's weights, with the stats
needed to use them, to artifacts/lstm.pt (loadable with torch.load(..., weights_only=True)).
A rerun with the same params and data resumes from the checkpoint; raising lstm.epochs
continues a finished run.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dvclive import Live
from models.common import (
    autocast,
    load_checkpoint,
    pick_device,
    run_key,
    save_checkpoint,
    seed_everything,
    stage_params,
    training_args,
)
from models.data import LipsWindows, audio_stats, lip_metrics, lips_stats, load_corpus, split_corpus
from models.lstm import AudioToLips
from tasks.params import digest


def lstm_step(model, optimizer, scaler, audio: torch.Tensor, lips: torch.Tensor, device: torch.device,
              use_amp: bool) -> torch.Tensor:
    """One Adam step on the MSE of z-scored lips; returns the batch loss."""
    with autocast(device, use_amp):
        loss = F.mse_loss(model(audio).float(), lips)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def main(argv: list[str] | None = None) -> None:
    args = training_args("lstm", "Train audio -> lips.", argv)
    params = stage_params(args)
    p = params.lstm
    device = pick_device(params.device)
    use_amp = p.amp and device.type == "cuda"
    seed_everything(params.seed)

    # -- data: stats on train only; the whole dataset lives on the device (a few MB)
    corpus = load_corpus(args.shards)
    split = split_corpus(corpus, params)
    audio_mean, audio_std = audio_stats(corpus, split.train)
    lips_mean, lips_std = lips_stats(corpus, split.train)
    stats = (audio_mean, audio_std, lips_mean, lips_std)
    train_set = LipsWindows(corpus, split.train, p.context, *stats).to(device)
    val_set = LipsWindows(corpus, split.val, p.context, *stats).to(device)
    face_size, lip_indices = corpus.meta["face_size"], corpus.meta["lip_indices"]
    print(f"lstm: {len(train_set)} train / {len(val_set)} val frames, split by {split.by}, on {device}")

    # -- model and optimiser, resumed when the checkpoint was made from the same params and data
    hparams = AudioToLips.hparams(p, features=train_set.audio.shape[1])
    model = AudioToLips(**hparams).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    key = run_key(p.model_dump(exclude={"epochs"}), params.split.model_dump(), params.seed, corpus.fingerprint())
    last_path = Path(args.checkpoints) / "last.pt"
    checkpoint = load_checkpoint(last_path)
    start_epoch, best = 0, {"val_loss": float("inf"), "epoch": -1, "state_dict": None}
    if checkpoint is not None and checkpoint["run_key"] == key:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint["scaler"]:  # empty when saved by a disabled (CPU) scaler
            scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng"])
        start_epoch, best = checkpoint["epoch"], checkpoint["best"]
        print(f"lstm: resuming from {last_path} after epoch {start_epoch}")
    elif checkpoint is not None:
        print(f"lstm: {last_path} was made with other params or data; starting afresh")

    live = Live(args.live, resume=start_epoch > 0, report=None, dvcyaml=False, save_dvc_exp=False)

    @torch.no_grad()
    def evaluate(dataset: LipsWindows, predict_mean: bool = False) -> dict:
        model.eval()
        predicted = []
        for index in torch.arange(len(dataset), device=device).split(1024):
            audio, _ = dataset[index]
            if predict_mean:
                predicted.append(torch.zeros(len(index), 16, device=device))
            else:
                with autocast(device, use_amp):
                    predicted.append(model(audio).float())
        predicted = torch.cat(predicted)
        metrics = {"val_loss": F.mse_loss(predicted, dataset.lips).item()}
        # the lip metrics are defined on lips in [0, 1] of the crop, not z-scored ones
        predicted_lips = predicted.cpu().numpy() * lips_std + lips_mean
        true_lips = dataset.lips.cpu().numpy() * lips_std + lips_mean
        metrics.update(lip_metrics(predicted_lips, true_lips, face_size, lip_indices))
        return metrics

    baseline = evaluate(val_set, predict_mean=True)
    live.summary["baseline_val_loss"] = baseline["val_loss"]
    live.summary["baseline_lmd_px"] = baseline["lmd_px"]
    print(f"lstm: baseline (predict the train mean) val_loss {baseline['val_loss']:.4f} "
          f"lmd_px {baseline['lmd_px']:.2f}")

    for epoch in range(start_epoch, p.epochs):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for index in torch.randperm(len(train_set), device=device).split(p.batch_size):
            audio, lips = train_set[index]
            loss = lstm_step(model, optimizer, scaler, audio, lips, device, use_amp)
            total, count = total + loss.item() * len(index), count + len(index)

        metrics = {"train_loss": total / max(count, 1), **evaluate(val_set)}
        if metrics["val_loss"] < best["val_loss"]:
            best = {"val_loss": metrics["val_loss"], "epoch": epoch + 1,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        live.step = epoch
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.summary["best_epoch"] = best["epoch"]
        live.summary["best_val_loss"] = best["val_loss"]
        live.next_step()
        save_checkpoint({"run_key": key, "epoch": epoch + 1, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "rng": torch.get_rng_state(), "best": best}, last_path)
        print(f"lstm: epoch {epoch + 1}/{p.epochs} " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
              + f" ({time.perf_counter() - t0:.1f}s)")
    live.end()

    # -- the artifact: the best epoch's weights and everything needed to use them
    state_dict = best["state_dict"] if best["state_dict"] is not None else model.state_dict()
    save_checkpoint({
        "state_dict": {k: v.cpu() for k, v in state_dict.items()},
        "hparams": hparams,
        "context": p.context,
        "audio_mean": torch.from_numpy(audio_mean), "audio_std": torch.from_numpy(audio_std),
        "lips_mean": torch.from_numpy(lips_mean), "lips_std": torch.from_numpy(lips_std),
        "lip_indices": list(lip_indices),
        "fps": float(corpus.meta["fps"]),
        "face_size": int(face_size),
        "feature_layout": list(corpus.meta.get("feature_layout", [])),
        "epoch": best["epoch"], "val_loss": best["val_loss"],
        "split": {"by": split.by, "val_videos": split.val_videos()},
        "params": params.lstm.model_dump(mode="json"),
        "params_digest": digest(params.lstm),
        "data_fingerprint": corpus.fingerprint(),
    }, args.out)
    print(f"lstm: wrote {args.out} (epoch {best['epoch']}, val_loss {best['val_loss']:.4f})")


if __name__ == "__main__":
    main()
