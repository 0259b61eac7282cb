"""The mouth metrics of evaluate (ARCHITECTURE.md, Metrics): on frames the generator never saw, each
driven by its own true lips, so that the real frame is the answer (models/evaluation/mouth_metrics.py).

The first validation video (never trained on) is split in time as evals/realface.py splits a real
clip: its first TRAIN_FRACTION of frames are what a method may look at, its last quarter is painted.
The frame generator paints each held-out frame from its own masked crop and lips, with a reference bank
made of the first frames alone (models/networks/unet.py: bank_rows, cgan.references of them), as a
render makes one for a video the generator was not trained on. Baselines from the same first frames:
nearest-lips retrieval (`baseline_nearest/`) and the mean face (`baseline_mean/`), composited the same
way (models/evaluation/baselines.py). The noise generator paints whole faces, not frames: null for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.evaluation.baselines import (
    composite_crops,
    mean_faces,
    nearest_faces,
    paint_frames,
    read_face_rows,
    split_in_time,
)
from models.evaluation.mouth_metrics import flicker, mouth_scores
from models.networks.unet import bank_rows
from models.records import References
from models.rendering.loading import Models
from tasks.config.params import CganParams

TRAIN_FRACTION = 0.75
SCORES = ("mouth_psnr", "mouth_ssim")
KEYS = ("mouth_video", "flicker", *SCORES,
        *(f"{baseline}/{score}" for baseline in ("baseline_nearest", "baseline_mean") for score in SCORES))


def held_out_mouth(models: Models, shards: Path, video_id: str | None) -> dict:
    """The KEYS of `video_id`'s held-out quarter (all null for the noise generator or no video)."""
    metrics: dict = dict.fromkeys(KEYS)
    if video_id is None or models.cgan_artifact.condition != "frame":
        return metrics
    rows, total = read_face_rows(shards, video_id)
    seen, held = split_in_time(rows, total, TRAIN_FRACTION)
    if not len(seen) or len(held) < 2:
        return metrics
    count = int(models.cgan_artifact.params.get("references", CganParams().references))
    picked = bank_rows(seen.lips, np.ones(len(seen), bool), models.cgan_artifact.lip_indices, count)
    bank = References(seen.faces[picked], seen.lips[picked], seen.frames[picked], seen.landmarks[picked])
    masks = held.measured_masks()
    ours = composite_crops(paint_frames(models.generator, models.cgan_artifact, held, bank), held)
    metrics.update({"mouth_video": video_id, "flicker": flicker(ours, masks, held.faces)})
    metrics.update(mouth_scores(ours, held.faces, masks))
    for baseline, faces in (("baseline_nearest", nearest_faces(seen, held)),
                            ("baseline_mean", mean_faces(seen, held))):
        scores = mouth_scores(composite_crops(faces, held), held.faces, masks)
        metrics.update({f"{baseline}/{score}": value for score, value in scores.items()})
    return metrics
