"""Datasets over the frame table (paths.shards): audio windows -> lips for the LSTM, lips -> face for the GAN.

Only the columns a stage needs are read. Faces stay JPEG bytes in one Arrow array and are
decoded per item, so a corpus of hours fits in memory and DataLoader workers share it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import simplejpeg
import torch
from torch.utils.data import Dataset

from models.artifacts import LipsStats, References
from models.networks.lstm import window_index
from models.networks.unet import hard_mask, images, mouth_weights, pick_references, reference_bank
from models.training.lips import lips_moments
from tasks.config.params import Params
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


def target_video(corpus: Corpus, name: str, held_out: frozenset[str] = frozenset()) -> str:
    """cgan.target_video, or the longest video not `held_out` (never trained on) when it is empty."""
    if not name:
        return max((v for v in corpus.videos if v.video_id not in held_out),
                   key=lambda v: (int(v.face_found.sum()), v.video_id)).video_id
    if name not in {v.video_id for v in corpus.videos}:
        raise ValueError(f"cgan.target_video: no video {name!r} in the shards")
    if name in held_out:
        raise ValueError(f"cgan.target_video: {name!r} is held out (split.held_out): never trained on")
    return name


@dataclass
class Split:
    """Per video, which frames belong to train and to val (bool masks over all its frames)."""

    by: str
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    def val_videos(self) -> list[str]:
        return [video_id for video_id, mask in self.val.items() if mask.any()]

    def held_out(self) -> frozenset[str]:
        """The videos none of whose frames is trained on (by video or speaker; none by time)."""
        return frozenset(video_id for video_id, mask in self.train.items() if not mask.any())


def speaker_of(video_id: str, params: Params) -> str:
    """The person in a video: split.speakers names them, else the video is a person of its own."""
    return params.split.speakers.get(video_id, video_id)


def _by_hash(names: set[str], share: float, total: int) -> set[str]:
    """A `share` of `total` of `names` (at least one), picked by a hash of each: stable as names come."""
    ordered = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    return set(ordered[: min(len(ordered), max(1, round(share * total)))])


def held_out_speakers(corpus: Corpus, params: Params) -> set[str]:
    """The people split.by: speaker never trains on: split.held_out, else a val_fraction share of them
    picked by hash, never the person of the GAN's target video."""
    people = {speaker_of(v.video_id, params) for v in corpus.videos}
    named = set(params.split.held_out)
    if named:
        if named - people:
            raise ValueError(f"split.held_out: no video of {', '.join(sorted(named - people))} in the shards")
        if named == people:
            raise ValueError("split.held_out holds out every speaker: nobody is left to train on")
        return named
    keep = speaker_of(target_video(corpus, params.cgan.target_video), params)
    if len(people) < 2:
        raise ValueError("split.by: speaker needs at least 2 speakers; use split.by: time")
    return _by_hash(people - {keep}, params.split.val_fraction, len(people))


def split_corpus(corpus: Corpus, params: Params) -> Split:
    """The train/val split, the same for every stage: a function of the data and params only.

    By video: a `val_fraction` share of the videos, picked by a hash of their id (stable
    when videos are added), never the GAN's target video. By speaker: every video of the people
    held_out_speakers names, so that no person is on both sides, and the videos split.by_time names split
    by time as below (a trained person measured on their own later speech). By time (or `auto` with fewer
    than 3 videos): the last `val_fraction` of each video, with a gap of 2n+1 frames so that
    no LSTM window of a train frame overlaps one of a val frame.
    """
    by = params.split.by
    if by == "auto":
        by = "video" if len(corpus.videos) >= 3 else "time"
    if by in ("video", "speaker"):
        if by == "video":
            keep = target_video(corpus, params.cgan.target_video)
            if len(corpus.videos) < 2:
                raise ValueError("split.by: video needs at least 2 videos; use split.by: time")
            held_out = _by_hash({v.video_id for v in corpus.videos} - {keep}, params.split.val_fraction,
                                len(corpus.videos))
        else:
            people = held_out_speakers(corpus, params)
            held_out = {v.video_id for v in corpus.videos if speaker_of(v.video_id, params) in people}
        train = {v.video_id: np.full(len(v), v.video_id not in held_out) for v in corpus.videos}
        val = {v.video_id: np.full(len(v), v.video_id in held_out) for v in corpus.videos}
        for v in _by_time_videos(corpus, params, held_out):
            train[v.video_id], val[v.video_id] = _time_split(v, params)
        return Split(by, train, val)
    train, val = {}, {}
    for v in corpus.videos:
        train[v.video_id], val[v.video_id] = _time_split(v, params)
    return Split(by, train, val)


def _time_split(v: Video, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) of one video split by time: its last val_fraction is val, with a gap of 2n+1 frames
    before it so that no LSTM window of a train frame overlaps one of a val frame."""
    frames = np.arange(len(v))
    cut = len(v) - math.ceil(params.split.val_fraction * len(v))
    return frames < cut - (2 * params.lstm.context + 1), frames >= cut


def _by_time_videos(corpus: Corpus, params: Params, held_out: set[str]) -> list[Video]:
    """The videos split.by_time names (a trained person's, split by time within the speaker split)."""
    names = set(params.split.by_time)
    missing = names - {v.video_id for v in corpus.videos}
    if missing:
        raise ValueError(f"split.by_time: no video {min(missing)!r} in the shards")
    if names & held_out:
        raise ValueError(f"split.by_time: {min(names & held_out)!r} is held out whole (split.held_out)")
    return [v for v in corpus.videos if v.video_id in names]


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
                                               list(corpus.meta["lip_indices"]), count)
    return banks


class FramesWithReferences(Dataset):
    """For each frame with a face in `rows`, what the frame generator (models/networks/unet.py) trains on:
    (real crop (3, S, S) in [-1, 1], hard mask (1, S, S), reference crop (3, S, S) in [-1, 1], z-scored
    lips, L1 weights (1, S, S): mouth_weights). The reference is its video's bank crop with the nearest
    lips, never a neighbour (pick_references); crops are decoded and masks drawn per item."""

    def __init__(self, corpus: Corpus, rows: dict[str, np.ndarray], lips_mean: np.ndarray,
                 lips_std: np.ndarray, banks: dict[str, References], mouth: float):
        faces, landmarks, lips, references, crops, offset = [], [], [], [], [], 0
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
            offset += len(bank.crops)
        self.faces = pa.concat_arrays(faces) if faces else pa.array([], pa.large_binary())
        self.landmarks = np.concatenate(landmarks or [np.zeros((0, 68, 2), np.float32)])
        self.raw_lips = torch.from_numpy(np.concatenate(lips or [np.zeros((0, LIPS_DIM), np.float32)]))
        self.lips = ((self.raw_lips - torch.from_numpy(lips_mean)) / torch.from_numpy(lips_std)).float()
        self.references = np.concatenate(references or [np.zeros(0, np.int64)])
        self.crops = np.concatenate(crops or [np.zeros((0, 1, 1, 3), np.uint8)])
        self.mouth = mouth

    def __len__(self) -> int:
        return len(self.lips)

    def __getitem__(self, index: int):
        real = decode_face(self.faces[index].as_py())
        mask = torch.from_numpy(hard_mask(self.landmarks[index], real.shape[-1]))[None]
        reference = images(self.crops[self.references[index]][None])[0]
        weights = mouth_weights(self.raw_lips[index][None], mask[None], self.mouth)[0]
        return real, mask, reference, self.lips[index], weights
