"""The compositing metrics of evaluate (ARCHITECTURE.md, Metrics), on the target's own frames driven by
its own speech, each beside the Wav2Lip-style hard paste of the crop's box (`baseline_paste/...`):

- full_lmd_px: dlib run on the composited full frames, its lips mapped into crop pixels by the frame's
  crop transform, against the lips the generator was asked for (full_face_found: the share found);
- seam: mean gradient magnitude on the mask's border in the composite over the same in the source
  (1.0: the border cannot be seen; a pasted box's edge is a step, far above 1);
- outside_psnr: composite vs source outside the mask, in dB: only re-encoding differs there.

Both videos go through the encoder and are decoded back, so every metric is measured on what a
viewer gets. Frames are streamed; memory holds the masks (a byte a pixel) of the clip.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import cv2
import numpy as np

from models import render
from models.cgan import generate_faces
from models.composite import composite, hard_paste, outside_error, seam_gradients
from models.media import Encoder
from models.speech import speech_lips
from models.target import read_target_rows, target_video_file
from tasks import landmarks as lm
from tasks.decode import iter_frames, probe, read_audio

METHODS = ("composite", "baseline_paste")


def _lips_in_crop(
    frame: np.ndarray, crop: np.ndarray, lip_indices: list[int], face_size: int
) -> np.ndarray | None:
    """dlib's lips on a full frame, mapped into [0, 1] of the row's crop; None when it finds no face."""
    inverse = cv2.invertAffineTransform(np.asarray(crop, np.float64))
    corners = np.array([[0, 0], [face_size, face_size]], np.float64) @ inverse[:, :2].T + inverse[:, 2]
    side = np.abs(corners[1] - corners[0]).max()
    centre = corners.mean(0)
    x0, y0 = np.maximum(np.floor(centre - side).astype(int), 0)
    x1, y1 = np.ceil(centre + side).astype(int)
    region = np.ascontiguousarray(frame[y0:y1, x0:x1])
    found = lm.find_landmarks(region, upsample=1 if side < 160 else 0)
    if found is None:
        return None
    points = found[lip_indices] + (x0, y0)
    crop = np.asarray(crop, np.float64)
    return ((points @ crop[:, :2].T + crop[:, 2]) / face_size).reshape(-1).astype(np.float32)


def _write_clips(frames, faces, rows, scratch: Path, audio: Path, fps: float, params) -> dict[str, list]:
    """Composite and paste every frame into two mp4s under `scratch`; returns their masks (uint8)."""
    masks = {method: [] for method in METHODS}
    info = probe(audio)
    seconds = len(faces) / fps
    encoders = {
        method: Encoder(
            scratch / f"{method}.mp4", audio, seconds, info.width, info.height, fps, None, params.render
        )
        for method in METHODS
    }
    with encoders["composite"] as soft, encoders["baseline_paste"] as hard:
        for index, (frame, face) in enumerate(zip(frames, faces)):
            args = (frame, face, rows.crop[index])
            for method, encoder, (image, alpha) in (
                ("composite", soft, composite(*args, rows.landmarks[index], rows.face_found[index], True)),
                ("baseline_paste", hard, hard_paste(*args, rows.face_found[index])),
            ):
                encoder.write(image)
                masks[method].append(None if alpha is None else np.round(alpha * 255).astype(np.uint8))
    return masks


def composite_metrics(models, params, shards: Path, videos: Path) -> dict:
    """The metrics above on the first evaluate.composite_seconds of the generator's target video."""
    p = params.preprocess
    target = render.target_of(models, params)
    path = target_video_file(videos, target)
    rows = read_target_rows(shards, target)
    count = min(len(rows), round(params.evaluate.composite_seconds * p.fps))
    samples = read_audio(path, p.sample_rate)[: round((count / p.fps + 1) * p.sample_rate)]
    lips = render.clip_lips(
        models, params, speech_lips(models, samples, p.sample_rate, p.fps, p)[:count], target
    )
    faces = generate_faces(models.generator, models.cgan_ckpt, lips)
    indices, face_size = models.cgan_ckpt["lip_indices"], models.cgan_ckpt["face_size"]
    totals = {m: {"seam": [0.0, 0.0], "outside": [0.0, 0], "lmd": [], "asked": 0} for m in METHODS}
    with tempfile.TemporaryDirectory(prefix="reenact-eval-") as scratch:
        masks = _write_clips(iter_frames(path, p.fps), faces, rows, Path(scratch), path, p.fps, params)
        decoded = [iter_frames(Path(scratch) / f"{m}.mp4", p.fps) for m in METHODS]
        for index, (source, *outputs) in enumerate(zip(iter_frames(path, p.fps), *decoded)):
            for method, image in zip(METHODS, outputs):
                _accumulate(
                    totals[method],
                    image,
                    source,
                    masks[method][index],
                    rows,
                    index,
                    lips[index],
                    indices,
                    face_size,
                )
    return _summarise(totals)


def _accumulate(total: dict, image, source, mask, rows, index, asked, indices, face_size) -> None:
    alpha = None if mask is None else mask.astype(np.float32) / 255
    error, values = outside_error(image, source, alpha)
    total["outside"][0] += error
    total["outside"][1] += values
    if alpha is None:
        return
    composite_sum, source_sum, _ = seam_gradients(image, source, alpha)
    total["seam"][0] += composite_sum
    total["seam"][1] += source_sum
    total["asked"] += 1
    found = _lips_in_crop(image, rows.crop[index], indices, face_size)
    if found is not None:
        total["lmd"].append(np.linalg.norm((found - asked).reshape(-1, 2), axis=1).mean() * face_size)


def _summarise(totals: dict) -> dict:
    metrics = {}
    for method, total in totals.items():
        prefix = "" if method == "composite" else f"{method}/"
        mse = total["outside"][0] / max(total["outside"][1], 1)
        metrics[f"{prefix}seam"] = total["seam"][0] / total["seam"][1] if total["seam"][1] else float("nan")
        metrics[f"{prefix}outside_psnr"] = 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")
        metrics[f"{prefix}full_lmd_px"] = float(np.mean(total["lmd"])) if total["lmd"] else float("nan")
        metrics[f"{prefix}full_face_found"] = len(total["lmd"]) / max(total["asked"], 1)
    return metrics
