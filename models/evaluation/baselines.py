"""Baselines for a painted lower face, and the compositing every method is measured through
(models/evaluation/mouth_metrics.py): a clip's rows with a face, split in time into the frames a method
may learn from and the held-out ones it is judged on.

- nearest-lips retrieval (`nearest_baseline`): the lower face of the training frame whose lips are
  nearest the held-out frame's (Synthesizing Obama's candidate search, without its warps);
- the mean training face (`mean_baseline`): the mean of the training crops, a smear at its best.

Each paints the hard mask's region of the held-out crop (as the frame-conditioned generator of
models/networks/unet.py does) and is composited into that crop by the renderer's own `composite`
(models/rendering/composite.py: its soft mask, colour match and detail bands) with the identity as
the crop transform: the composite a render shows, in crop pixels.

`paint_frames` is the frame-conditioned generator's forward pass over held-out rows, each with the reference
a render would give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import simplejpeg
import torch

from models.artifacts import CganArtifact
from models.networks.cgan import to_uint8
from models.networks.mask import MEASURED_SIDE_MARGIN, lower_face_mask
from models.networks.unet import UNetGenerator, chosen_references, generator_input, hard_mask
from models.records import References
from models.rendering.composite import composite
from tasks.table.shards import list_column_as_array, read_frames

IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], np.float64)  # a crop's own pixels -> crop pixels


@dataclass(frozen=True)
class FaceRows:
    """A clip's frame-table rows with a face, in frame order."""

    frames: np.ndarray  # (N,) int: frame numbers
    faces: np.ndarray  # (N, S, S, 3) uint8: the aligned crops
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixels
    lips: np.ndarray  # (N, LIPS_DIM) float32, [0, 1] of the crop
    crops: np.ndarray  # (N, 2, 3) float32: source pixels -> crop pixels

    def __len__(self) -> int:
        return len(self.frames)

    def take(self, index: np.ndarray) -> FaceRows:
        return FaceRows(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def size(self) -> int:
        return self.faces.shape[1]

    def measured_masks(self) -> np.ndarray:
        """(N, S, S) float32: each row's soft mask of the region the metrics measure (wider at the sides than
        the compositing mask, models/networks/mask.py: MEASURED_SIDE_MARGIN)."""
        side = MEASURED_SIDE_MARGIN
        return np.stack([lower_face_mask(points, self.size, side) for points in self.landmarks])

    def hard_masks(self) -> np.ndarray:
        """(N, S, S) float32 in {0, 1}: the region painted (models/networks/unet.py: hard_mask)."""
        return np.stack([hard_mask(points, self.size) for points in self.landmarks])


def read_face_rows(shards: Path, video_id: str) -> tuple[FaceRows, int]:
    """(the rows of partition `video_id` with a face, the number of frames with or without one)."""
    table = read_frames(Path(shards), video_id, ["frame", "face_found", "face", "landmarks", "lips", "crop"])
    found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
    jpegs = table.column("face").to_pylist()
    rows = FaceRows(
        frames=table.column("frame").to_numpy()[found],
        faces=np.stack([simplejpeg.decode_jpeg(jpegs[i]) for i in np.flatnonzero(found)]),
        landmarks=list_column_as_array(table, "landmarks").reshape(-1, 68, 2)[found],
        lips=list_column_as_array(table, "lips")[found],
        crops=list_column_as_array(table, "crop").reshape(-1, 2, 3)[found],
    )
    return rows, len(found)


def split_in_time(rows: FaceRows, total: int, train_fraction: float) -> tuple[FaceRows, FaceRows]:
    """(training rows, held-out rows): frames before floor(total * fraction), and from its ceiling
    on; whichever way a trainer rounds the cut, it never trains on a held-out frame."""
    cut = total * train_fraction
    return rows.take(rows.frames < math.floor(cut)), rows.take(rows.frames >= math.ceil(cut))


def paste_lower_face(painted: np.ndarray, rows: FaceRows) -> np.ndarray:
    """Each painting inside its row's hard mask, the row's own crop outside it."""
    return np.where(rows.hard_masks()[..., None] > 0, painted, rows.faces)


def composite_crops(faces: np.ndarray, rows: FaceRows) -> np.ndarray:
    """Each face (S, S, 3) composited into its row's crop as a render composites it into the frame."""
    return np.stack([composite(real, face, IDENTITY, points)[0]
                     for face, real, points in zip(faces, rows.faces, rows.landmarks)])


def nearest_lips(lips: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """For each row of `lips`, the index of the row of `pool` nearest it (L2)."""
    return (((lips[:, None] - pool[None]) ** 2).sum(-1)).argmin(1)


def nearest_faces(train: FaceRows, held: FaceRows) -> np.ndarray:
    """The held-out crops, each painted with the lower face of the training frame whose lips are
    nearest its own (before compositing)."""
    return paste_lower_face(train.faces[nearest_lips(held.lips, train.lips)], held)


def nearest_baseline(train: FaceRows, held: FaceRows) -> np.ndarray:
    """`nearest_faces`, composited."""
    return composite_crops(nearest_faces(train, held), held)


def mean_face(train: FaceRows) -> np.ndarray:
    """(S, S, 3) uint8: the mean training crop."""
    return np.round(train.faces.astype(np.float64).mean(0)).astype(np.uint8)


def mean_faces(train: FaceRows, held: FaceRows) -> np.ndarray:
    """The held-out crops, each painted with the mean training face's lower face (before compositing)."""
    return paste_lower_face(np.broadcast_to(mean_face(train), held.faces.shape), held)


def mean_baseline(train: FaceRows, held: FaceRows) -> np.ndarray:
    """`mean_faces`, composited."""
    return composite_crops(mean_faces(train, held), held)


def _images(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def paint_frames(generator: UNetGenerator, artifact: CganArtifact, held: FaceRows,
                 bank: References | None = None, batch: int = 16) -> np.ndarray:
    """The frame generator's faces for the held-out rows: each from its own masked crop, the reference
    a render gives for its lips from the bank the artifact keeps of its target video (`chosen_references`;
    crops of the training frames only; or `bank`), and its own lips (z-scored by the artifact)."""
    bank = artifact.references[artifact.target_video] if bank is None else bank
    references = chosen_references(held.lips, bank, held.landmarks, artifact.lip_indices,
                                   artifact.warps_references)
    masks = torch.from_numpy(held.hard_masks())[:, None]
    lips = torch.from_numpy(((held.lips - artifact.lips_mean) / artifact.lips_std).astype(np.float32))
    out = []
    for lo in range(0, len(held), batch):
        part = slice(lo, lo + batch)
        x = generator_input(_images(held.faces[part]), masks[part], _images(references[part]), lips[part])
        out.append(to_uint8(generator(x)).numpy())
    return np.concatenate(out)
