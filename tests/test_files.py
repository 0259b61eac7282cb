"""Atomic writes (tasks/config/files.py): the target is the old one or the new one, never half of either."""

from __future__ import annotations

import pytest

from tasks.config.files import atomic_path, temporary_name


def test_a_finished_write_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "table.parquet"
    with atomic_path(target) as temp:
        assert temp.parent == target.parent and temp.name.startswith(".") and temp.suffix == ".parquet"
        temp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]


def test_a_failed_write_keeps_the_old_target(tmp_path):
    target = tmp_path / "a.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_a_folder_replaces_the_old_folder_whole(tmp_path):
    target = tmp_path / "video_id=x"
    target.mkdir()
    (target / "part-0000.parquet").write_bytes(b"old")
    with atomic_path(target) as temp:
        temp.mkdir()
        (temp / "part-0000.parquet").write_bytes(b"new")
    assert (target / "part-0000.parquet").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["video_id=x"]


def test_temporary_names_are_unique():
    assert temporary_name("x.mp4") != temporary_name("x.mp4")
