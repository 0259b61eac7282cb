"""The compositing metrics of evaluate (ARCHITECTURE.md, Metrics), on the target's own frames driven by
its own speech, each beside the Wav2Lip-style hard paste of the crop's box (`baseline_paste/...`):

- full_lmd_px: dlib run on the composited full frames, its lips mapped into crop pixels by the frame's
  crop transform, against the lips the generator was asked for (full_face_found: the share found);
- seam: mean gradient magnitude on the mask's border in the composite over the same in the source
  passed through the same encoder (1.0: the border cannot be seen; a pasted box's edge is a step, far
  above 1). The encoder softens every edge a little; measured against the raw source, that softening
  would count as a blurred border;
- outside_psnr: composite vs source outside the mask, in dB: only re-encoding differs there.

Both videos go through the encoder and are decoded back, so every metric is measured on what a
viewer gets; so does the untouched source, once, as the seam's reference. Frames are streamed;
memory holds the masks (a byte a pixel) of the clip.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import cv2
import numpy as np

from models.networks.cgan import generate_faces
from models.rendering import render
from models.rendering.composite import composite, hard_paste
from models.rendering.layouts import painter
from models.rendering.loading import Target
from models.rendering.media import Encoder
from models.rendering.speech import speech_lips
from models.rendering.target import target_video_file
from models.training.lip_metrics import lip_distances
from tasks.config.params import Params
from tasks.rows import landmarks as lm
from tasks.rows.decode import iter_frames, probe, read_audio

METHODS = ("composite", "baseline_paste")
REFERENCE = "source"  # the untouched frames, encoded like the methods' clips


def gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.magnitude(
        cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    )


def boundary(alpha: np.ndarray) -> np.ndarray:
    """Pixels on the mask's border (where alpha crosses 0.5), one pixel wide, as a bool image."""
    inside = (alpha >= 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    return edge & (cv2.erode(inside, np.ones((3, 3), np.uint8)) == 0)


def seam_gradients(
    composite_frame: np.ndarray, source: np.ndarray, alpha: np.ndarray
) -> tuple[float, float, int]:
    """(sum of gradient magnitude on the mask's border in the composite, the same in the source,
    border pixels): summed over frames, their ratio is the `seam` metric (1.0: invisible)."""
    edge = boundary(alpha)
    if not edge.any():
        return 0.0, 0.0, 0
    return (
        float(gradient(composite_frame)[edge].sum()),
        float(gradient(source)[edge].sum()),
        int(edge.sum()),
    )


def outside_error(
    composite_frame: np.ndarray, source: np.ndarray, alpha: np.ndarray | None
) -> tuple[float, int]:
    """(sum of squared differences, values) over the pixels the mask does not touch: for outside_psnr."""
    outside = np.ones(source.shape[:2], bool) if alpha is None else alpha <= 1e-3
    diff = composite_frame[outside].astype(np.float64) - source[outside].astype(np.float64)
    return float((diff * diff).sum()), int(diff.size)


def lips_in_crop(
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
    """Composite and paste every frame into two mp4s under `scratch`, and the source frames untouched
    into a third (REFERENCE); returns the methods' masks (uint8)."""
    masks = {method: [] for method in METHODS}
    info = probe(audio)
    seconds = len(faces) / fps
    encoders = {
        name: Encoder(scratch / f"{name}.mp4", audio, seconds, (info.width, info.height), fps, params.render)
        for name in (*METHODS, REFERENCE)
    }
    with encoders["composite"] as soft, encoders["baseline_paste"] as hard, encoders[REFERENCE] as untouched:
        for index, (frame, face) in enumerate(zip(frames, faces)):
            args = (frame, face, rows.crop[index])
            untouched.write(frame)
            for method, encoder, (image, alpha) in (
                ("composite", soft, composite(*args, rows.landmarks[index], rows.face_found[index], True)),
                ("baseline_paste", hard, hard_paste(*args, rows.face_found[index])),
            ):
                encoder.write(image)
                masks[method].append(None if alpha is None else np.round(alpha * 255).astype(np.uint8))
    return masks


def composite_metrics(target: Target, params: Params) -> dict:
    """The metrics above on the first evaluate.composite_seconds of the target video (resolve_target: the
    generator's own, its rows and footage in the project's frame table and videos)."""
    p, models = params.preprocess, target.models
    path = target_video_file(target.paths.videos, target.name)
    rows = target.needs_rows("the compositing metrics")
    count = min(len(rows), round(params.evaluate.composite_seconds * p.fps))
    samples = read_audio(path, p.sample_rate)[: round((count / p.fps + 1) * p.sample_rate)]
    lips = render.clip_lips(target, params, speech_lips(models, samples, p.sample_rate, p.fps, p)[:count])
    paint = painter(models, rows)  # the frame generator paints frames 0.. in order
    faces = generate_faces(models.generator, models.cgan_artifact, lips, frames=paint and paint(0, lips))
    indices, face_size = models.cgan_artifact.lip_indices, models.cgan_artifact.face_size
    tallies = {method: _Tally(face_size) for method in METHODS}
    with tempfile.TemporaryDirectory(prefix="reenact-eval-") as scratch:
        masks = _write_clips(iter_frames(path, p.fps), faces, rows, Path(scratch), path, p.fps, params)
        decoded = [iter_frames(Path(scratch) / f"{name}.mp4", p.fps) for name in (REFERENCE, *METHODS)]
        for index, (source, encoded, *outputs) in enumerate(zip(iter_frames(path, p.fps), *decoded)):
            for method, image in zip(METHODS, outputs):
                mask = masks[method][index]
                alpha = None if mask is None else mask.astype(np.float32) / 255
                found = None if alpha is None else lips_in_crop(image, rows.crop[index], indices, face_size)
                tallies[method].add(image, source, encoded, alpha, found, lips[index])
    metrics = {}
    for method, tally in tallies.items():
        metrics.update(tally.metrics("" if method == "composite" else f"{method}/"))
    return metrics


class _Tally:
    """One method's sums over the clip's frames, and the metrics they give."""

    def __init__(self, face_size: int):
        self.face_size = face_size
        self.seam, self.outside, self.lmd, self.asked = [0.0, 0.0], [0.0, 0], [], 0

    def add(self, image, source, encoded, alpha: np.ndarray | None, found: np.ndarray | None, asked) -> None:
        """One decoded output frame beside its source frame (`encoded`: that frame through the same
        encoder); `alpha` its mask (None: no face), `found` the lips dlib finds on it in [0, 1] of the
        crop (None: none), `asked` the generator's."""
        error, values = outside_error(image, source, alpha)
        self.outside[0] += error
        self.outside[1] += values
        if alpha is None:
            return
        composite_sum, source_sum, _ = seam_gradients(image, encoded, alpha)
        self.seam[0] += composite_sum
        self.seam[1] += source_sum
        self.asked += 1
        if found is not None:
            self.lmd.append(float(lip_distances(found[None], np.asarray(asked)[None], self.face_size)[0]))

    def metrics(self, prefix: str) -> dict:
        mse = self.outside[0] / max(self.outside[1], 1)
        return {
            f"{prefix}seam": self.seam[0] / self.seam[1] if self.seam[1] else float("nan"),
            f"{prefix}outside_psnr": 10 * math.log10(255**2 / mse) if mse > 0 else float("inf"),
            f"{prefix}full_lmd_px": float(np.mean(self.lmd)) if self.lmd else float("nan"),
            f"{prefix}full_face_found": len(self.lmd) / max(self.asked, 1),
        }
