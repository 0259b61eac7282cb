"""The project layout in one place: tasks/config/paths.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config.paths import Paths


def test_default_layout_is_relative_to_the_root():
    paths = Paths.at()
    assert paths.lstm == Path("artifacts/lstm.pt")
    assert paths.cgan == Path("artifacts/cgan.pt")
    assert paths.shards == Path("data/shards")
    assert paths.videos == Path("data/raw/videos")
    assert paths.manifest == Path("data/raw/manifest.parquet")
    assert paths.videos_table == Path("data/shards/_videos.parquet")
    assert paths.metrics == Path("reports/metrics.json")
    assert paths.checkpoint_dir("cgan") == Path("checkpoints/cgan")
    assert paths.live_dir("lstm") == Path("dvclive/lstm")


def test_a_moved_folder_carries_what_derives_from_it(tmp_path):
    paths = Paths.at(tmp_path, raw=tmp_path / "elsewhere", artifacts=None)
    assert paths.videos == tmp_path / "elsewhere" / "videos"
    assert paths.manifest == tmp_path / "elsewhere" / "manifest.parquet"
    assert paths.lstm == tmp_path / "artifacts" / "lstm.pt"
    moved = paths.moved(shards=tmp_path / "s", lstm=None)
    assert moved.videos_table == tmp_path / "s" / "_videos.parquet"
    assert moved.lstm == paths.lstm


def test_an_unknown_location_is_refused():
    with pytest.raises(TypeError, match="no field shard"):
        Paths.at(shard="x")
