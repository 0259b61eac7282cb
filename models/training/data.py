"""Datasets over the frame table (paths.shards): audio windows -> lips for the LSTM, lips -> face for the GAN.

Only the columns a stage needs are read. Faces stay JPEG bytes in one Arrow array and are
decoded per item, so a corpus of hours fits in memory and DataLoader workers share it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import simplejpeg
import torch
from torch.utils.data import Dataset

from models.networks.lstm import window_index
from models.networks.reference_warp import warp_reference
from models.networks.unet import hard_mask, images, pick_references, reference_bank
from models.networks.unet_losses import mouth_weights
from models.records import LipsStats, References
from models.training.lips import lips_moments

if TYPE_CHECKING:
    from models.training.split import Split
from tasks.rows.landmarks import LIPS_DIM
from tasks.table.shards import (
    PARTITION,
    list_column_as_array,
    part_files,
    read_frames,
    video_ids,
    video_metadata,
)


@dataclass
class Video:
    video_id: str
    audio: np.ndarray  # (frames, features) float32
    lips: np.ndarray  # (frames, LIPS_DIM) float32: lip points (x, y) in [0, 1] of the crop, NaN if no face
    face_found: np.ndarray  # (frames,) bool
    faces: pa.Array | None  # JPEG per frame (large_binary), when asked for
    landmarks: np.ndarray | None = None  # (frames, 68, 2) crop pixels, NaN if no face; with the faces

    def __len__(self) -> int:
        return len(self.face_found)


@dataclass
class Corpus:
    videos: list[Video]  # sorted by video_id
    meta: dict  # the shards' `reenact` metadata: fps, face_size, lip_indices, feature_layout, ...

    def video(self, video_id: str) -> Video:
        return next(v for v in self.videos if v.video_id == video_id)

    def fingerprint(self) -> str:
        """Changes when the data a model was trained on changes: videos, their lengths, how they were
        made (the shards' cache key: the row-making params and code, tasks/rows/rowkey.py)."""
        rows = [(v.video_id, len(v), int(v.face_found.sum())) for v in self.videos]
        made_by = self.meta.get("cache_key") or self.meta.get("params_digest")  # older shards: no cache_key
        text = json.dumps([rows, made_by, self.meta.get("format_version")])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_video(shards: str | Path, video_id: str, faces: bool = False) -> Video:
    """One video partition of `shards`, frames in order; `faces` also keeps the JPEG bytes and the
    landmarks (what the frame generator's masks are made from)."""
    columns = ["face_found", "lips", "audio"] + (["face", "landmarks"] if faces else [])
    table = read_frames(Path(shards), video_id, columns)
    return Video(
        video_id=video_id,
        audio=list_column_as_array(table, "audio"),
        lips=list_column_as_array(table, "lips"),
        face_found=table.column("face_found").to_numpy(zero_copy_only=False).astype(bool),
        faces=table.column("face").combine_chunks().cast(pa.large_binary()) if faces else None,
        landmarks=list_column_as_array(table, "landmarks").reshape(table.num_rows, -1, 2) if faces else None,
    )


def load_corpus(shards: str | Path, faces: bool = False) -> Corpus:
    """Every video partition under `shards`, frames in order; `faces` also keeps the JPEG bytes."""
    videos = [load_video(shards, video_id, faces) for video_id in video_ids(shards)
              if part_files(shards, video_id)]
    if not videos:
        raise FileNotFoundError(f"{shards}: no {PARTITION}=<id>/part-*.parquet (run `dvc repro preprocess`)")
    return Corpus(videos, video_metadata(shards, videos[0].video_id))


def audio_stats(corpus: Corpus, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the audio features over the given rows (faces or not: all are context)."""
    audio = np.concatenate([v.audio[rows[v.video_id]] for v in corpus.videos]).astype(np.float64)
    return audio.mean(0).astype(np.float32), np.maximum(audio.std(0), 1e-6).astype(np.float32)


def lips_stats(corpus: Corpus, rows: dict[str, np.ndarray],
               targets: str = "corpus") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the lips over the given rows that have a face: what targets are z-scored with. With
    `targets` "speaker" (lstm.targets), the std is of each video's lips less their own mean (speaker_mean)."""
    kept = [(v, rows[v.video_id] & v.face_found) for v in corpus.videos]
    lips = np.concatenate([v.lips[k] for v, k in kept]).astype(np.float64)
    if targets == "speaker":
        spread = np.concatenate([v.lips[k] - speaker_mean(v, k) for v, k in kept if k.any()]).std(0)
    else:
        spread = lips.std(0)
    return lips.mean(0).astype(np.float32), np.maximum(spread, 1e-6).astype(np.float32)


def speaker_mean(video: Video, rows: np.ndarray) -> np.ndarray:
    """(LIPS_DIM,) the mean of a video's lips over `rows` (with a face): whose mouth it is, which no speech
    tells. lstm.targets "speaker" takes it off every target, so the LSTM learns how speech moves a mouth."""
    return video.lips[rows & video.face_found].mean(0).astype(np.float32)


def speaker_means(corpus: Corpus, split: Split) -> dict[str, np.ndarray]:
    """Per video with frames on either side, speaker_mean over its train frames (over its val frames when
    none trains): where lstm.targets "speaker" centres its lips, in training and when they are measured."""
    means = {}
    for v in corpus.videos:
        rows = next((r for r in (split.train[v.video_id], split.val[v.video_id]) if (r & v.face_found).any()),
                    None)
        if rows is not None:  # a video on neither side (a fold of cross-validation leaves some out) has none
            means[v.video_id] = speaker_mean(v, rows)
    return means


def video_lips_stats(corpus: Corpus) -> dict[str, LipsStats]:
    """Per video with 2 frames with a face or more: the statistics of its lips, for aligning one
    speaker's lips to another's."""
    return {
        v.video_id: lips_moments(v.lips[v.face_found]) for v in corpus.videos if v.face_found.sum() >= 2
    }


class LipsWindows(Dataset):
    """For each frame with a face in `rows`: its window of 2n+1 normalised audio features and its
    z-scored lips (less `centre`'s mean of its video where it has one: lstm.targets "speaker", instead of
    lips_mean). Frames without a face are no target but stay in their neighbours' windows.

    Indexing takes an int or a LongTensor of indices, so a training loop can fetch a whole
    batch in one gather: `audio, lips = dataset[idx]`.
    """

    def __init__(self, corpus: Corpus, rows: dict[str, np.ndarray], context: int,
                 audio_mean: np.ndarray, audio_std: np.ndarray, lips_mean: np.ndarray, lips_std: np.ndarray,
                 centre: dict[str, np.ndarray] | None = None):
        audio, windows, lips, offset = [], [], [], 0
        for v in corpus.videos:
            audio.append((v.audio - audio_mean) / audio_std)
            targets = np.flatnonzero(rows[v.video_id] & v.face_found)
            windows.append(window_index(len(v), context)[targets] + offset)
            mean = lips_mean if centre is None else centre.get(v.video_id, lips_mean)
            lips.append((v.lips[targets] - mean) / lips_std)
            offset += len(v)
        self.audio = torch.from_numpy(np.concatenate(audio).astype(np.float32))
        self.windows = torch.from_numpy(np.concatenate(windows).astype(np.int64))
        self.lips = torch.from_numpy(np.concatenate(lips).astype(np.float32))

    def __len__(self) -> int:
        return len(self.lips)

    def __getitem__(self, index):
        return self.audio[self.windows[index]], self.lips[index]

    def to(self, device: torch.device) -> LipsWindows:
        """Move the whole dataset (a few MB even for hours of video) to the device once."""
        self.audio, self.windows, self.lips = (t.to(device) for t in (self.audio, self.windows, self.lips))
        return self


def decode_face(jpeg: bytes) -> torch.Tensor:
    """JPEG bytes -> (3, H, W) float in [-1, 1]."""
    image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class FacesWithLips(Dataset):
    """For each frame with a face in `rows`: (face in [-1, 1], z-scored lips); faces decoded per item."""

    def __init__(self, corpus: Corpus, rows: dict[str, np.ndarray], lips_mean: np.ndarray,
                 lips_std: np.ndarray):
        faces, lips = [], []
        for v in corpus.videos:
            if v.video_id not in rows:
                continue
            targets = np.flatnonzero(rows[v.video_id] & v.face_found)
            faces.append(v.faces.take(pa.array(targets)))
            lips.append((v.lips[targets] - lips_mean) / lips_std)
        self.faces = pa.concat_arrays(faces) if faces else pa.array([], pa.large_binary())
        self.lips = (torch.from_numpy(np.concatenate(lips).astype(np.float32)) if lips
                     else torch.empty(0, LIPS_DIM))

    def __len__(self) -> int:
        return len(self.lips)

    def __getitem__(self, index: int):
        return decode_face(self.faces[index].as_py()), self.lips[index]



def video_references(corpus: Corpus, rows: dict[str, np.ndarray], count: int) -> dict[str, References]:
    """Per video, its reference crops for the frame generator, taken from its `rows` (a video without
    any: from all its frames, which are then never trained on: held out by video)."""
    banks = {}
    for v in corpus.videos:
        usable = rows.get(v.video_id, np.zeros(len(v), bool)) & v.face_found
        if v.face_found.any():
            banks[v.video_id] = reference_bank(v.lips, usable if usable.any() else v.face_found, v.faces,
                                               list(corpus.meta["lip_indices"]), count, v.landmarks)
    return banks


# Warped references kept by a dataset (FramesWithReferences._reference): ~15 minutes of 128 px frames.
WARPED_KEPT_BYTES = 2**30


class FramesWithReferences(Dataset):
    """For each frame with a face in `rows`, what the frame generator (models/networks/unet.py) trains on:
    (real crop (3, S, S) in [-1, 1], hard mask (1, S, S), reference crop (3, S, S) in [-1, 1], z-scored
    lips, L1 weights (1, S, S): mouth_weights). The reference is its video's bank crop with the nearest
    lips, never a neighbour (pick_references); crops are decoded, masks drawn and, with `warp`
    (cgan.warp_references), references warped onto the frame's pose and lips per item
    (models/networks/reference_warp.py)."""

    def __init__(self, corpus: Corpus, rows: dict[str, np.ndarray], lips_mean: np.ndarray,
                 lips_std: np.ndarray, banks: dict[str, References], mouth: float, warp: bool = False):
        faces, landmarks, lips, references, crops, offset = [], [], [], [], [], 0
        bank_landmarks = []
        for v in corpus.videos:
            if v.video_id not in rows:
                continue
            targets = np.flatnonzero(rows[v.video_id] & v.face_found)
            bank = banks[v.video_id]
            faces.append(v.faces.take(pa.array(targets)))
            landmarks.append(v.landmarks[targets])
            lips.append(v.lips[targets])
            references.append(pick_references(v.lips[targets], bank, at=targets) + offset)
            crops.append(bank.crops)
            bank_landmarks.append(bank.landmarks)
            offset += len(bank.crops)
        self.faces = pa.concat_arrays(faces) if faces else pa.array([], pa.large_binary())
        self.landmarks = np.concatenate(landmarks or [np.zeros((0, 68, 2), np.float32)])
        self.raw_lips = torch.from_numpy(np.concatenate(lips or [np.zeros((0, LIPS_DIM), np.float32)]))
        self.lips = ((self.raw_lips - torch.from_numpy(lips_mean)) / torch.from_numpy(lips_std)).float()
        self.references = np.concatenate(references or [np.zeros(0, np.int64)])
        self.crops = np.concatenate(crops or [np.zeros((0, 1, 1, 3), np.uint8)])
        self.mouth = mouth
        self.lip_indices = list(corpus.meta["lip_indices"])
        # warped only where every bank kept its landmarks (banks of artifacts saved before they were kept)
        self.reference_landmarks = (np.concatenate(bank_landmarks) if warp and bank_landmarks
                                    and all(b is not None for b in bank_landmarks) else None)
        self.warped: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.lips)

    def _reference(self, index: int) -> np.ndarray:
        """Item `index`'s reference crop, warped when asked: each once, then kept while they fit in
        WARPED_KEPT_BYTES (a 5 s clip's hundred frames are passed over a hundred times)."""
        k = self.references[index]
        if self.reference_landmarks is None:
            return self.crops[k]
        if index in self.warped:
            return self.warped[index]
        crop = warp_reference(self.crops[k], self.reference_landmarks[k], self.landmarks[index],
                              self.raw_lips[index].numpy(), self.lip_indices)
        if (len(self.warped) + 1) * crop.nbytes <= WARPED_KEPT_BYTES:
            self.warped[index] = crop
        return crop

    def __getitem__(self, index: int):
        real = decode_face(self.faces[index].as_py())
        mask = torch.from_numpy(hard_mask(self.landmarks[index], real.shape[-1]))[None]
        reference = images(self._reference(index)[None])[0]
        weights = mouth_weights(self.raw_lips[index][None], mask[None], self.mouth)[0]
        return real, mask, reference, self.lips[index], weights
