"""Training throughput on the present device, printed as one JSON object.

    python -m benchmarks.train [--root .] [--shards DIR] [--synthetic] [--seconds 10] [--override KEY=VALUE]

lstm_samples_per_s: training frames per second of the LSTM (forward, backward, Adam) with the
whole dataset on the device and batches gathered in one index, as models.training.train_lstm does.
cgan_images_per_s: real images per second through a training step of cgan.condition's generator, JPEG decoding
and the DataLoader included, with AMP and channels_last on CUDA, as models.training.train_cgan does.
The *_naive figures are the same work done the obvious way, measured in the same run: the
LSTM fed by a DataLoader of single items, the cGAN one image at a time in fp32 NCHW with
decoding in the main process. Without shards, or with --synthetic, a synthetic corpus the size of the
demo one with crops of preprocess.face_size (tasks/table/synthetic.py) is made in a temp folder: e.g.
`--synthetic --override preprocess.face_size=256` measures 256-px crops. Locations default to the
project's under --root (tasks/config/paths.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models.common import pick_device, seed_everything
from models.networks.lstm import AudioToLips
from models.training.data import lips_stats, load_corpus, video_references
from models.training.gan import STEPS, Gan, dataset, to_device
from models.training.split import split_corpus
from models.training.train_lstm import lips_data, lstm_step
from tasks.config.params_loader import load_params, parse_override
from tasks.config.paths import Paths
from tasks.table.shards import video_ids
from tasks.table.synthetic import synthetic_shards


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, batches, seconds: float, device: torch.device) -> float:
    """Items per second of `step` over `batches` (cycled), after two warm-up steps."""
    iterator = iter(batches())
    for _ in range(2):
        step(next(iterator))
    sync(device)
    items, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(batches())
            continue
        items += step(batch)
        sync(device)
    return items / (time.perf_counter() - start)


def lstm_rate(params, corpus, split, device, seconds: float, naive: bool) -> float:
    p = params.lstm
    dataset = lips_data(corpus, split, p, torch.device("cpu")).train  # the audio as the LSTM hears it
    model = AudioToLips(**AudioToLips.hparams(p, dataset.audio.shape[1])).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    use_amp = p.amp and not naive and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if naive:
        def batches():
            return DataLoader(dataset, batch_size=p.batch_size, shuffle=True)
    else:
        dataset.to(device)

        def batches():
            order = torch.randperm(len(dataset), device=device)
            return (dataset[index] for index in order.split(p.batch_size))

    def step(batch) -> int:
        audio, lips = (t.to(device) for t in batch)
        lstm_step(model, optimizer, scaler, audio, lips, device, use_amp)
        return len(lips)
    return rate(step, batches, seconds, device)


def cgan_rate(params, corpus, split, device, seconds: float, naive: bool) -> float:
    p = params.cgan
    references = video_references(corpus, split.train, p.references) if p.condition == "frame" else {}
    data = dataset(corpus, split.train, *lips_stats(corpus, split.train), references, p, p.condition)
    use_amp = p.amp and not naive and device.type == "cuda"
    fmt = torch.channels_last if device.type == "cuda" and not naive else torch.contiguous_format
    gan = Gan.build(p, int(corpus.meta["face_size"]), device, use_amp, fmt)
    workers = 0 if naive else p.num_workers

    def batches():
        return DataLoader(data, batch_size=1 if naive else p.batch_size, shuffle=True, drop_last=True,
                          num_workers=workers, pin_memory=device.type == "cuda" and not naive)

    def step(batch) -> int:
        STEPS[gan.condition](gan, to_device(list(batch), gan), p)
        return len(batch[0])
    return rate(step, batches, seconds, device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the project (default: this folder)")
    parser.add_argument("--params", default=None, help="default: the project's")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--shards", default=None, help="default: the project's")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--synthetic", action="store_true",
                        help="a synthetic corpus at preprocess.face_size even where shards exist")
    args = parser.parse_args(argv)
    paths = Paths.at(args.root, params=args.params, shards=args.shards)
    params = load_params(paths.params, dict(parse_override(text) for text in args.override))
    device = pick_device(params.device)
    seed_everything(params.seed)
    with tempfile.TemporaryDirectory() as temp:
        shards = paths.shards
        if args.synthetic or not (shards.is_dir() and video_ids(shards)):
            shards = synthetic_shards(Path(temp) / "shards", videos=6, frames=300, params=params.preprocess)
        corpus = load_corpus(shards, faces=True)
        face_size = int(corpus.meta["face_size"])
        if face_size != params.preprocess.face_size:
            raise SystemExit(f"{shards} holds {face_size}-px crops, preprocess.face_size is "
                             f"{params.preprocess.face_size}: pass --synthetic to measure that size")
        split = split_corpus(corpus, params)
        result = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "shards": str(paths.shards) if shards == paths.shards else "synthetic (6 videos x 300 frames)",
            "lstm_batch_size": params.lstm.batch_size,
            "face_size": face_size,
            "cgan_condition": params.cgan.condition,
            "cgan_batch_size": params.cgan.batch_size,
            "cgan_ngf_ndf": [params.cgan.ngf, params.cgan.ndf],
            "amp": device.type == "cuda" and params.cgan.amp,
            "lstm_samples_per_s": round(lstm_rate(params, corpus, split, device, args.seconds, False), 1),
            "cgan_images_per_s": round(cgan_rate(params, corpus, split, device, args.seconds, False), 2),
        }
        if not args.skip_naive:
            lstm_naive = lstm_rate(params, corpus, split, device, args.seconds, True)
            cgan_naive = cgan_rate(params, corpus, split, device, args.seconds, True)
            result["lstm_samples_per_s_naive"] = round(lstm_naive, 1)
            result["cgan_images_per_s_naive"] = round(cgan_naive, 2)
            result["naive"] = (
                "lstm: DataLoader of single items; cgan: batch 1, fp32 NCHW, decoding in the main process")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
