"""Train lips -> face (models/networks/cgan.py) on the frame table. The DVC stage `train_cgan`:

    python -m models.training.train_cgan [--root .] [--params params.yaml] [--override cgan.epochs=3 ...]
    torchrun --nproc_per_node=N -m models.training.train_cgan     # DDP: NCCL on CUDA, gloo on CPU

cgan.condition picks the generator: `frame` (the default) paints the lower face of each frame's own crop
from a reference crop of the same video and the lips (models/networks/unet.py); `noise` is the paper's
DCGAN. The last cgan.finetune_epochs epochs train on cgan.target_video only (paper, 5.2), to hold
that video's face texture and background. Every epoch: loss_d, loss_g and l1_val (generated
vs real validation frames, given their lips) to paths.live_dir("cgan"), a sample grid (real row over
generated row, fixed noise and fixed validation lips) as a DVCLive image, and a resumable
checkpoint in paths.checkpoint_dir("cgan") / last.pt. The generator, its lips stats, the lips stats of
every video (for aligning speakers when rendering) and the frame generator's reference crops go to
paths.cgan (models/artifacts.py: CganArtifact); each path under --root (tasks/config/paths.py). Only
rank 0 logs and saves; cgan.batch_size is per process.

`models/training/finetune.py` trains a copy of paths.cgan on one more video (reenact adapt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn

from models.artifacts import CganArtifact, Condition
from models.common import (
    autocast,
    code_digest,
    init_distributed,
    pick_device,
    run_key,
    seed_everything,
)
from models.networks.cgan import generator_hparams, to_uint8
from models.records import References
from models.training.data import Corpus, lips_stats, load_corpus, video_lips_stats, video_references
from models.training.gan import Dataset, Gan, batches, dataset, fakes, train_epoch
from models.training.lip_metrics import redetected_lmd
from models.training.run import TrainingRun, epoch_line, made_from
from models.training.split import Split, split_corpus, target_video
from tasks.config.entry import (
    DEFAULT_ROOT,
    Cgan,
    Overrides,
    ParamsFile,
    Root,
    Shards,
    run,
    stage_params,
    stage_paths,
)
from tasks.config.params import CganParams, Params
from tasks.rows.landmarks import landmarks_in_crops
from tasks.table.shards import evenly_spaced

SAMPLES = 8  # columns of the sample grid


@dataclass
class FaceData:
    """The splits as the condition's datasets (models/training/gan.py: a batch), and the fixed validation
    frames every epoch shows."""

    condition: Condition
    corpus: Corpus
    split: Split
    target: str  # the video the last epochs train on alone
    lips_mean: np.ndarray
    lips_std: np.ndarray
    references: dict[str, References]  # per video, for the frame generator ({} for the noise one)
    train: Dataset
    target_train: Dataset
    val: Dataset
    val_batch: list[torch.Tensor] | None  # evenly spaced validation items: the same every epoch and run
    samples: np.ndarray  # which of them the sample grid shows

    @property
    def val_real(self) -> torch.Tensor | None:
        return None if self.val_batch is None else self.val_batch[0]

    @property
    def val_lips(self) -> torch.Tensor | None:
        """The fixed validation frames' z-scored lips."""
        return None if self.val_batch is None else self.val_batch[3 if self.condition == "frame" else 1]


def face_data(shards: Path, params: Params) -> FaceData:
    """Faces stay JPEG until a batch needs them; lips are z-scored with the train split's stats."""
    p = params.cgan
    corpus = load_corpus(shards, faces=True)
    split = split_corpus(corpus, params)
    target = target_video(corpus, p.target_video, split.held_out())
    lips_mean, lips_std = lips_stats(corpus, split.train)
    references = video_references(corpus, split.train, p.references) if p.condition == "frame" else {}

    def rows_of(rows: dict[str, np.ndarray]) -> Dataset:
        return dataset(corpus, rows, lips_mean, lips_std, references, p, p.condition)

    val = rows_of(split.val)
    val_index = evenly_spaced(len(val), p.val_frames)
    items = [val[i] for i in val_index]
    return FaceData(
        p.condition, corpus, split, target, lips_mean, lips_std, references,
        train=rows_of(split.train),
        target_train=rows_of({target: split.train[target]}),
        val=val,
        val_batch=[torch.stack(column) for column in zip(*items)] if items else None,
        samples=evenly_spaced(len(val_index), SAMPLES),
    )


def masked_l1(fake: torch.Tensor, data: FaceData) -> float:
    """l1_val: generated vs real validation frames, over the painted region (the frame generator's hard
    mask; the whole face for the noise generator)."""
    error = (fake - data.val_real).abs()
    if data.condition == "noise":
        return error.mean().item()
    mask = data.val_batch[1].expand_as(error)
    return (error * mask).sum().item() / max(mask.sum().item(), 1.0)


@torch.no_grad()
def validate(gan: Gan, noise: torch.Tensor, data: FaceData, p: CganParams, live) -> dict[str, float]:
    """l1_val on the fixed validation frames; the sample grid, real row over generated row, to DVCLive."""
    if data.val_batch is None:
        return {}
    with autocast(gan.device, gan.use_amp):
        generated = fakes(gan.netG, gan.condition, noise, data.val_batch, p.batch_size, gan.device)
    real_row = torch.cat(list(data.val_real[data.samples]), 2)
    fake_row = torch.cat(list(generated[data.samples]), 2)
    grid = to_uint8(torch.cat([real_row, fake_row], 1)[None])[0]
    live.log_image("samples.png", Image.fromarray(grid.numpy()))
    return {"l1_val": masked_l1(generated, data)}


@torch.no_grad()
def condition_metrics(gan: Gan, noise: torch.Tensor, data: FaceData) -> dict:
    """Does the generator obey its condition? dlib is run again on generated validation frames and
    the lips it finds are compared with the lips asked for (gen_lmd_px, pixels of the face crop);
    real_lmd_px is the same measurement on the real frames: dlib's own floor."""
    generated = fakes(gan.netG, gan.condition, noise, data.val_batch, 64, gan.device)
    asked = data.val_lips.numpy() * data.lips_std + data.lips_mean
    lip_indices = list(data.corpus.meta["lip_indices"])
    size = data.val_real.shape[-1]

    def distance(images: torch.Tensor) -> tuple[float, float]:
        return redetected_lmd(landmarks_in_crops(to_uint8(images).numpy(), lip_indices), asked, size)

    gen_px, gen_found = distance(generated)
    real_px, _ = distance(data.val_real)
    return {"gen_lmd_px": gen_px, "gen_face_found": gen_found, "real_lmd_px": real_px}


def train(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None, override: Overrides = None,
          shards: Shards = None, cgan: Cgan = None) -> None:
    """Train lips -> face (models/networks/cgan.py, cgan.condition's generator) on the frame table: the DVC
    stage train_cgan (torchrun: DDP).
    `--cgan`: where the artifact goes."""
    paths = stage_paths(root, shards=shards, cgan=cgan)
    params = stage_params(params_file or paths.params, override)
    p = params.cgan
    process = init_distributed(pick_device(params.device))
    device = process.device
    use_amp = p.amp and device.type == "cuda"
    # channels_last lets cuDNN pick its NHWC (tensor core) kernels; on CPU it buys nothing here.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    seed_everything(params.seed)

    data = face_data(paths.shards, params)
    if process.is_main:
        print(f"cgan ({p.condition}): {len(data.train)} train / {len(data.val)} val frames, target "
              f"{data.target} ({len(data.target_train)} train frames), {process.world} process(es) "
              f"on {device}")
    # One noise vector for all samples (and for rendering): only the lips change across the grid.
    noise = torch.randn(p.noise_dim, generator=torch.Generator().manual_seed(params.seed))

    raw = Gan.build(p, int(data.corpus.meta["face_size"]), device, use_amp, memory_format)
    # Epochs and how the data is fed are left out of the key: a longer or shorter run resumes. The code is
    # this module's and all it imports (also when run as __main__).
    key = run_key(p.model_dump(exclude={"epochs", "finetune_epochs", "num_workers", "val_frames"}),
                  params.split.model_dump(), params.seed, data.corpus.fingerprint(),
                  code_digest(__spec__.name))
    training = TrainingRun("cgan", key, raw.state(), paths, process.is_main, epochs=p.epochs)
    gan = raw.distributed(process)

    for epoch in range(training.start_epoch, p.epochs):
        started = time.perf_counter()
        # A seed per epoch and rank: a resumed run draws the same noise as an uninterrupted one.
        torch.manual_seed(params.seed + 1000 * epoch + process.rank)
        finetune = epoch >= p.epochs - p.finetune_epochs
        loader = batches(data.target_train if finetune else data.train, epoch, p, process, params.seed)
        metrics = train_epoch(gan, loader, p)
        if not process.is_main:
            continue
        metrics.update(validate(raw, noise, data, p, training.live))
        training.log(epoch, metrics)
        training.save(epoch)
        print(epoch_line("cgan", epoch, p.epochs, metrics, started, " (target only)" if finetune else ""))

    if process.is_main:
        if data.val_batch is not None:
            obedience = condition_metrics(raw, noise, data)
            training.summarise(obedience)
            print("cgan: " + " ".join(f"{k} {v:.4f}" for k, v in obedience.items()))
        training.finish(cgan_artifact(raw.netG, noise, data, p), paths.cgan)
        print(f"cgan: wrote {paths.cgan}")
    if process.world > 1:
        dist.destroy_process_group()


def cgan_artifact(generator: nn.Module, noise: torch.Tensor, data: FaceData, p: CganParams) -> CganArtifact:
    """The generator and everything needed to use it (models/networks/cgan.py: generate_faces; rendering's
    alignment of one speaker's lips to the target's uses every video's lips stats; the frame generator's
    reference crops)."""
    face_size = int(data.corpus.meta["face_size"])
    return CganArtifact(
        state_dict=generator.state_dict(),
        hparams=generator_hparams(p, face_size),
        condition=p.condition,
        noise=noise.numpy() if p.condition == "noise" else None,
        lips_mean=data.lips_mean, lips_std=data.lips_std,
        lips_stats=video_lips_stats(data.corpus),
        target_video=data.target,
        face_size=face_size,
        references=data.references,
        warps_references=p.condition == "frame" and p.warp_references,
        epoch=p.epochs,
        **made_from(p, data.corpus, data.split),
    )


def main(argv: list[str] | None = None) -> None:
    run(train, argv)


if __name__ == "__main__":
    main()
