"""Who trains on what (ARCHITECTURE.md, Splits): the train/val split of the frame table, the same for every
stage, a function of the data and the params only: by video, by speaker (no person on both sides; some
videos of trained people split by time: split.by_time), or by time.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from models.training.data import Corpus, Video
from tasks.config.params import Params


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
