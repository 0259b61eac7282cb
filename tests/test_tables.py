"""The status tables (tasks/table/tables.py): the manifest and `_videos.parquet`, read and written one way."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.ingest.download import MANIFEST_SCHEMA, failed_row, read_manifest, write_manifest
from tasks.table.shards import VIDEOS_SCHEMA, read_videos_table, write_videos_table
from tasks.table.tables import read_status_table, write_status_table

OK = {"video_id": "a", "status": "ok", "error": "", "frames": 20, "frames_with_face": 13, "seconds": 1.5,
      "fps": 30.0, "source": "a.mp4", "sha256": "ab" * 32, "warning": ""}


def test_rows_are_written_with_the_schemas_columns_and_read_back(tmp_path):
    path = tmp_path / "shards" / "_videos.parquet"
    rows = [{**OK, "not_a_column": 1}, {"video_id": "bad", "status": "failed", "error": "bad.mp4: no audio"}]
    assert write_status_table(rows, path, VIDEOS_SCHEMA) == path
    assert pq.read_schema(path).names == VIDEOS_SCHEMA.names
    read = read_status_table(path, VIDEOS_SCHEMA)
    assert read[0] == OK
    assert read[1] == {**dict.fromkeys(VIDEOS_SCHEMA.names), "video_id": "bad", "status": "failed",
                       "error": "bad.mp4: no audio"}
    assert [p.name for p in path.parent.iterdir()] == ["_videos.parquet"]
    assert read_status_table(tmp_path / "none.parquet", VIDEOS_SCHEMA) == []


def test_a_table_from_before_a_column_reads_with_it_null(tmp_path):
    path = tmp_path / "_videos.parquet"
    older = pa.schema([field for field in VIDEOS_SCHEMA if field.name != "warning"])
    pq.write_table(pa.Table.from_pylist([OK], schema=older), path)
    assert read_status_table(path, VIDEOS_SCHEMA) == [{**OK, "warning": None}]


def test_a_row_the_schema_cannot_hold_keeps_the_old_table(tmp_path):
    path = tmp_path / "_videos.parquet"
    write_status_table([OK], path, VIDEOS_SCHEMA)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_status_table([{**OK, "frames": "many"}], path, VIDEOS_SCHEMA)
    assert read_status_table(path, VIDEOS_SCHEMA) == [OK]
    assert [p.name for p in tmp_path.iterdir()] == ["_videos.parquet"]


def test_the_manifest_and_the_videos_table_are_status_tables(tmp_path):
    manifest = tmp_path / "raw" / "manifest.parquet"
    row = failed_row("https://example.org/x.mp4", "x: 404")
    assert list(row) == MANIFEST_SCHEMA.names
    write_manifest(manifest, [row])
    assert read_manifest(manifest) == read_status_table(manifest, MANIFEST_SCHEMA) == [row]
    assert pq.read_schema(manifest).names == MANIFEST_SCHEMA.names

    videos = write_videos_table(tmp_path / "shards", [OK])
    assert videos == tmp_path / "shards" / "_videos.parquet"
    assert read_videos_table(tmp_path / "shards") == read_status_table(videos, VIDEOS_SCHEMA) == [OK]
