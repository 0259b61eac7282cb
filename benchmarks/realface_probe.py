"""Can the frame-conditioned generator (models/networks/unet.py) paint a real person's mouth? One real clip.

    python benchmarks/realface_probe.py [--video CLIP] [--minutes 4] [--size 128] [--reference open]

The clip becomes frame rows with the project's own preprocessing (tasks/rows/video.py; kept in --shards,
so a rerun skips it). The U-Net trains on the first 75% of the frames with a face for --minutes on
--threads CPU threads, then paints the lower face of each held-out frame (the last 25%) given that
frame's own lips. Every method's painting is composited into the real crop the same way (the hard
mask's region from the method, the rest the frame's; the renderer's colour match and soft mask,
models/rendering/composite.py) and measured against the real crop inside the hard mask: mouth_psnr (dB) and
mouth_ssim (scikit-image's SSIM map, averaged there), each the mean over held-out frames.
Baselines, in the same run: `nearest_lips` (the lower face of the training frame whose lips are
nearest), `mean_face` (the mean training crop, composited as a whole generated face is),
`input_mean_fill` (the input with its hole filled by the mean training crop), `inpaint` (the
hole filled by OpenCV's Telea inpainting from the frame around it). Prints one JSON object and
saves a contact sheet (rows: real held-out crops, U-Net, nearest-lips) to --sheet.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
import torch
from skimage.metrics import structural_similarity

from models.networks.cgan import to_uint8
from models.networks.unet import (
    PatchDiscriminator,
    UNetGenerator,
    discriminator_loss,
    generator_input,
    generator_loss,
    hard_mask,
    mouth_weights,
)
from models.rendering.composite import lower_face_mask, match_colour
from tasks.config.params import PreprocessParams
from tasks.rows.crop import warp
from tasks.rows.decode import iter_frames, probe
from tasks.rows.landmarks import lips_opening
from tasks.rows.video import process_video, video_id_of
from tasks.table.shards import list_column_as_array, read_frames
from tasks.table.sheet import contact_sheet

REAL = Path(__file__).resolve().parents[2] / "shared/fixtures/real"
TRAIN_SHARE = 0.75
NEAR_GAP = 15  # a training frame's nearest-lips reference is at least this many frames away
SHEET_COLUMNS = 8


@dataclass
class Clip:
    """The frames with a face, in order: crops (N, S, S, 3) uint8, lips (N, 16) in [0, 1] of the crop,
    soft compositing masks (N, S, S) and hard masks (N, S, S), frame numbers (N,)."""

    faces: np.ndarray
    lips: np.ndarray
    soft: np.ndarray
    hard: np.ndarray
    frames: np.ndarray
    lip_indices: list[int]


def load_clip(video: Path, shards: Path, size: int) -> Clip:
    """Preprocess `video` into rows (skipped when current), then its crops at `size`: the rows' own
    JPEG crops at the preprocessing size, else cut again from the decoded frames with the rows'
    transforms scaled (the same crop, more pixels)."""
    params = PreprocessParams()
    process_video(video, shards, params)
    table = read_frames(shards, video_id_of(video), ["face_found", "face", "landmarks", "lips", "crop"])
    found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
    scale = size / params.face_size
    landmarks = list_column_as_array(table, "landmarks").reshape(-1, 68, 2)[found] * scale
    if scale == 1:
        jpegs = table.column("face").to_pylist()
        faces = np.stack([simplejpeg.decode_jpeg(jpegs[i]) for i in np.flatnonzero(found)])
    else:
        crops = list_column_as_array(table, "crop").reshape(-1, 2, 3) * scale
        width, height = probe(video).square_pixel_size()
        decoded = iter_frames(video, params.fps, width=width, height=height)
        faces = np.stack([warp(frame, crops[i], size) for i, frame in enumerate(decoded) if found[i]])
    return Clip(faces, list_column_as_array(table, "lips")[found],
                np.stack([lower_face_mask(points, size) for points in landmarks]),
                np.stack([hard_mask(points, size) for points in landmarks]), np.flatnonzero(found),
                params.lip_indices)


def nearest(lips: np.ndarray, pool: np.ndarray, gap: int = 0, at: np.ndarray | None = None) -> np.ndarray:
    """For each row of `lips`, the index into `pool` of the nearest lips (L2), at least `gap` frames
    from its own index `at` when given (a training frame must not take itself or its neighbours)."""
    distance = ((lips[:, None] - pool[None]) ** 2).sum(-1)
    if at is not None:
        distance[np.abs(at[:, None] - np.arange(len(pool))[None]) < gap] = np.inf
    return distance.argmin(1)


def references(clip: Clip, train: np.ndarray, rows: np.ndarray, mode: str, training: bool,
               rng: np.random.Generator) -> np.ndarray:
    """Indices into the clip of the reference crop for each of `rows`: the training frame with the
    widest-open mouth (`open`), a random training frame (`random`, only while training; the open one
    otherwise), or the training frame with the nearest lips (`nearest`)."""
    if mode == "nearest":
        at = rows if training else None
        return train[nearest(clip.lips[rows], clip.lips[train], NEAR_GAP, at)]
    if mode == "random" and training:
        return rng.choice(train, len(rows))
    return np.full(len(rows), train[lips_opening(clip.lips[train], clip.lip_indices).argmax()])


def images(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1


def batch(clip: Clip, rows: np.ndarray, refs: np.ndarray, lips_mean: np.ndarray, lips_std: np.ndarray):
    """(generator input, real crops, hard masks, lips in [0, 1], z-scored lips) for `rows` of the clip."""
    real, mask = images(clip.faces[rows]), torch.from_numpy(clip.hard[rows])[:, None]
    lips = torch.from_numpy(clip.lips[rows])
    z = (lips - lips_mean) / lips_std
    return generator_input(real, mask, images(clip.faces[refs]), z), real, mask, lips, z


def train(clip: Clip, rows: np.ndarray, args, stats) -> tuple[UNetGenerator, dict]:
    """The U-Net (and, with --adversarial > 0, its discriminator) trained for args.minutes."""
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    generator = UNetGenerator(args.size, args.base, residual=args.residual)
    discriminator = PatchDiscriminator(base=args.base) if args.adversarial > 0 else None
    opt_g = torch.optim.Adam(generator.parameters(), args.lr, betas=(0.5, 0.999))
    opt_d = discriminator and torch.optim.Adam(discriminator.parameters(), args.lr, betas=(0.5, 0.999))
    started, steps, parts = time.perf_counter(), 0, {}
    while time.perf_counter() - started < args.minutes * 60:
        picked = rng.choice(rows, args.batch)
        refs = references(clip, rows, picked, args.reference, True, rng)
        x, real, mask, lips, z = batch(clip, picked, refs, *stats)
        masked, fake, fake_logits = x[:, :3], generator(x), None
        if discriminator is not None:
            real_logits = discriminator(real, masked, z)
            loss_d = discriminator_loss(real_logits, discriminator(fake.detach(), masked, z), mask)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            fake_logits = discriminator(fake, masked, z)
        loss, parts = generator_loss(fake, real, mouth_weights(lips, mask, args.mouth), fake_logits, mask,
                                     args.l1, args.adversarial)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        steps += 1
    seconds = time.perf_counter() - started
    return generator.eval(), {"steps": steps, "train_seconds": round(seconds, 1),
                              "train_images_per_s": round(steps * args.batch / seconds, 2),
                              "last_losses": {k: round(v, 4) for k, v in parts.items()}}


@torch.no_grad()
def paint(generator: UNetGenerator, clip: Clip, rows: np.ndarray, refs: np.ndarray, stats) -> np.ndarray:
    out = [to_uint8(generator(batch(clip, rows[i : i + 32], refs[i : i + 32], *stats)[0])).numpy()
           for i in range(0, len(rows), 32)]
    return np.concatenate(out)


def composed(painted: np.ndarray, real: np.ndarray, soft: np.ndarray, hard: np.ndarray,
             whole: bool = False) -> np.ndarray:
    """A painted crop composited into the real one: inside the hard mask the painting (or, `whole`,
    everywhere: a whole generated face), outside the frame's own; then the renderer's colour match
    and soft mask."""
    face = painted if whole else np.where(hard[..., None] > 0, painted, real)
    face = match_colour(face, real, soft)
    return np.clip(real + (face.astype(np.float32) - real) * soft[..., None] + 0.5, 0, 255).astype(np.uint8)


def mouth_scores(composites: np.ndarray, clip: Clip, rows: np.ndarray) -> dict:
    """mouth_psnr and mouth_ssim over the hard mask, means over frames."""
    psnr, ssim = [], []
    for image, i in zip(composites, rows):
        inside, real = clip.hard[i] > 0, clip.faces[i]
        error = ((image[inside].astype(np.float64) - real[inside]) ** 2).mean()
        psnr.append(10 * np.log10(255.0**2 / max(error, 1e-10)))
        _, full = structural_similarity(real, image, channel_axis=2, data_range=255, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False, full=True)
        ssim.append(full.mean(2)[inside].mean())
    return {"mouth_psnr": round(float(np.mean(psnr)), 3), "mouth_ssim": round(float(np.mean(ssim)), 4)}


def baselines(clip: Clip, train_rows: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's composites of the held-out `rows`."""
    mean = clip.faces[train_rows].astype(np.float32).mean(0).round().astype(np.uint8)
    near = train_rows[nearest(clip.lips[rows], clip.lips[train_rows])]
    out: dict[str, list] = {"nearest_lips": [], "mean_face": [], "input_mean_fill": [], "inpaint": []}
    for i, j in zip(rows, near):
        real, soft, hard = clip.faces[i], clip.soft[i], clip.hard[i]
        out["nearest_lips"].append(composed(clip.faces[j], real, soft, hard))
        out["mean_face"].append(composed(mean, real, soft, hard, whole=True))
        out["input_mean_fill"].append(composed(mean, real, soft, hard))
        filled = cv2.inpaint(real, (hard > 0).astype(np.uint8), 5, cv2.INPAINT_TELEA)
        out["inpaint"].append(composed(filled, real, soft, hard))
    return {name: np.stack(images) for name, images in out.items()}


def generator_speed(size: int, base: int, batch_size: int = 16, steps: int = 3) -> float:
    """Forward + backward + Adam step images/s of the generator alone, on random inputs."""
    generator = UNetGenerator(size, base)
    optimiser = torch.optim.Adam(generator.parameters())
    x = torch.randn(batch_size, 23, size, size)
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        loss = generator(x).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return round(steps * batch_size / (time.perf_counter() - started), 2)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=REAL / "anchor_20s.mp4")
    temp = Path(tempfile.gettempdir())
    parser.add_argument("--shards", type=Path, default=temp / "reenact-realface-shards")
    parser.add_argument("--sheet", type=Path, default=temp / "realface_probe.png")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, choices=(128, 256))
    parser.add_argument("--base", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l1", type=float, default=100.0, help="L1 weight (the adversarial term weighs 1)")
    parser.add_argument("--adversarial", type=float, default=0.0,
                        help="adversarial weight; 0: no discriminator (it costs ~3x the steps)")
    parser.add_argument("--mouth", type=float, default=4.0, help="extra L1 weight at the mouth")
    parser.add_argument("--reference", choices=("open", "random", "nearest"), default="nearest")
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True,
                        help="paint the reference plus a learned change (else from scratch)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    clip = load_clip(args.video, args.shards, args.size)
    cut = int(len(clip.faces) * TRAIN_SHARE)
    train_rows, held = np.arange(cut), np.arange(cut, len(clip.faces))
    lips_mean, lips_std = clip.lips[train_rows].mean(0), clip.lips[train_rows].std(0) + 1e-6
    stats = (torch.from_numpy(lips_mean), torch.from_numpy(lips_std))
    speed = generator_speed(args.size, args.base)
    generator, run = train(clip, train_rows, args, stats)
    refs = references(clip, train_rows, held, args.reference, False, np.random.default_rng(args.seed))
    painted = paint(generator, clip, held, refs, stats)
    unet = np.stack([composed(p, clip.faces[i], clip.soft[i], clip.hard[i]) for p, i in zip(painted, held)])
    methods = {"unet": unet, **baselines(clip, train_rows, held)}
    scores = {name: mouth_scores(composites, clip, held) for name, composites in methods.items()}
    best = max(scores[name]["mouth_psnr"] for name in scores if name != "unet")
    columns = held[np.linspace(0, len(held) - 1, SHEET_COLUMNS).astype(int)] - cut
    rows = [clip.faces[held[columns]], unet[columns], methods["nearest_lips"][columns]]
    sheet = contact_sheet([face for row in rows for face in row], [np.full(16, np.nan)] * 3 * SHEET_COLUMNS,
                          args.sheet, SHEET_COLUMNS)
    print(json.dumps({
        "video": args.video.name, "size": args.size, "train_frames": len(train_rows), "held_out": len(held),
        "config": {k: v for k, v in vars(args).items() if k not in ("video", "shards", "sheet")},
        "generator_fwd_bwd_images_per_s": speed, **run, "scores": scores,
        "psnr_margin_db": round(scores["unet"]["mouth_psnr"] - best, 3),
        "ssim_beats_all": all(scores["unet"]["mouth_ssim"] > s["mouth_ssim"] for n, s in scores.items()
                              if n != "unet"),
        "sheet": str(sheet), "load_average": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
