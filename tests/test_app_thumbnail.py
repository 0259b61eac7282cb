"""The web app's target thumbnail when the target's video is gone: its first face crop in the shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.app_targets import thumbnail
from tasks.config.params import PreprocessParams
from tasks.config.paths import Paths
from tasks.table.shards import ShardWriter


def test_without_its_video_a_target_shows_its_first_face_from_the_shards(tmp_path):
    shards, cache = tmp_path / "shards", tmp_path / "cache"
    cache.mkdir()
    paper = PreprocessParams(row_group_size=16, phones=False, words=False, whisper=False)
    with ShardWriter(shards, "t", paper, "ab" * 32) as writer:
        for i in range(40):
            writer.add(frame=i, time=i / 30, face_found=i >= 30, landmarks=np.zeros((68, 2)),
                       lips=np.zeros(16), audio=np.zeros(28), face=f"jpeg of frame {i}".encode(),
                       crop=np.zeros(6))
        writer.commit()
    paper_params = PreprocessParams(phones=False, words=False, whisper=False)
    with ShardWriter(shards, "faceless", paper_params, "cd" * 32) as writer:
        writer.add(frame=0, time=0.0, face_found=False, landmarks=np.zeros((68, 2)), lips=np.zeros(16),
                   audio=np.zeros(28), face=b"no face", crop=np.zeros(6))
        writer.commit()
    paths = Paths.at(tmp_path, shards=shards)

    shown = thumbnail("t", paths, cache)
    assert shown is not None and Path(shown).read_bytes() == b"jpeg of frame 30"
    assert thumbnail("faceless", paths, cache) is None
    assert thumbnail("unknown", paths, cache) is None
