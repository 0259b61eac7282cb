import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import simplejpeg
from helpers import synthetic_shards
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from tasks.config.files import temporary_name
from tasks.config.params import PreprocessParams, rows_digest
from tasks.config.paths import VIDEOS_TABLE
from tasks.rows import rowkey
from tasks.table import shards

# the paper's 28 audio columns
PARAMS = PreprocessParams(row_group_size=16, phones=False, words=False, whisper=False)
ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def _write(root, video_id, rows, params=PARAMS, sha=SHA, commit=True, face=b"\xff\xd8jpeg\xff\xd9"):
    writer = shards.ShardWriter(root, video_id, params, sha)
    with writer:
        for i in range(rows):
            face_found = i % 3 != 0
            landmarks = np.full((68, 2), i if face_found else np.nan, np.float32)
            writer.add(frame=i, time=i / params.fps, face_found=face_found, landmarks=landmarks,
                       lips=np.full(16, 0.5, np.float32), audio=np.full(28, i, np.float32),
                       face=face, crop=np.eye(2, 3, dtype=np.float32))
        if commit:
            writer.commit()
    return writer


def test_schema_and_metadata(tmp_path):
    _write(tmp_path, "v1", 20)
    (part,) = shards.part_files(tmp_path, "v1")
    schema = pq.read_schema(part)
    expected = {
        "frame": pa.int32(), "time": pa.float64(), "face_found": pa.bool_(),
        "landmarks": pa.list_(pa.float32(), 136), "lips": pa.list_(pa.float32(), 16),
        "audio": pa.list_(pa.float32(), 28), "face": pa.binary(), "crop": pa.list_(pa.float32(), 6),
    }
    assert {field.name: field.type for field in schema} == expected
    assert schema.names == list(expected)
    meta = json.loads(schema.metadata[b"reenact"])
    assert meta == shards.read_metadata(part)
    assert meta["format_version"] == shards.FORMAT_VERSION and meta["fps"] == 30.0
    assert meta["sample_rate"] == 16000 and meta["face_size"] == 128
    assert meta["lip_indices"] == PARAMS.lip_indices and len(meta["feature_layout"]) == 28
    assert meta["params_digest"] == rows_digest(PARAMS) and meta["source_sha256"] == SHA
    assert meta["cache_key"] == rowkey.cache_key(PARAMS) and meta["code_digest"] == rowkey.code_digest()
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"


def test_row_groups_and_parts(tmp_path):
    rows = 16 * shards.ROW_GROUPS_PER_PART + 5
    _write(tmp_path, "long", rows)
    parts = shards.part_files(tmp_path, "long")
    assert [p.name for p in parts] == ["part-0000.parquet", "part-0001.parquet"]
    first = pq.ParquetFile(parts[0]).metadata
    assert first.num_row_groups == shards.ROW_GROUPS_PER_PART and first.row_group(0).num_rows == 16
    table = pq.ParquetDataset(shards.partition_dir(tmp_path, "long")).read()
    assert table.column("frame").to_pylist() == list(range(rows))
    assert shards.partition_counts(tmp_path, "long") == (rows, rows - len(range(0, rows, 3)))
    landmarks = np.stack(table.column("landmarks").to_numpy(zero_copy_only=False))
    assert np.isnan(landmarks[0]).all() and (landmarks[1] == 1).all()


def test_partition_appears_only_on_commit(tmp_path):
    _write(tmp_path, "done", 20)
    writer = shards.ShardWriter(tmp_path, "half", PARAMS, SHA)
    with writer:
        for i in range(40):
            writer.add(frame=i, time=i / 30, face_found=False, landmarks=np.full((68, 2), np.nan),
                       lips=np.full(16, np.nan), audio=np.zeros(28), face=b"", crop=np.zeros(6))
        # Two row groups are on disk in the temporary folder; readers must not see them.
        assert writer.temp.name.startswith(".") and any(writer.temp.iterdir())
        assert not shards.partition_dir(tmp_path, "half").exists()
        assert set(pd.read_parquet(tmp_path)["video_id"]) == {"done"}
        assert ds.dataset(tmp_path, partitioning="hive").to_table().num_rows == 20
    assert list(tmp_path.iterdir()) == [shards.partition_dir(tmp_path, "done")]


def test_failure_keeps_the_previous_partition(tmp_path):
    _write(tmp_path, "v", 20)
    writer = shards.ShardWriter(tmp_path, "v", PARAMS, "cd" * 32)
    with pytest.raises(RuntimeError, match="decoder died"), writer:
        writer.add(frame=0, time=0.0, face_found=False, landmarks=np.zeros((68, 2)), lips=np.zeros(16),
                   audio=np.zeros(28), face=b"", crop=np.zeros(6))
        raise RuntimeError("decoder died")
    assert shards.read_metadata(shards.part_files(tmp_path, "v")[0])["source_sha256"] == SHA
    assert shards.partition_counts(tmp_path, "v")[0] == 20
    assert [p.name for p in tmp_path.iterdir()] == ["video_id=v"]


def test_commit_replaces_the_old_partition(tmp_path):
    _write(tmp_path, "v", 16 * shards.ROW_GROUPS_PER_PART + 1)
    _write(tmp_path, "v", 10, sha="cd" * 32)
    assert [p.name for p in shards.part_files(tmp_path, "v")] == ["part-0000.parquet"]
    assert shards.partition_counts(tmp_path, "v")[0] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["video_id=v"]


def test_add_takes_keywords_only(tmp_path):
    with shards.ShardWriter(tmp_path, "v", PARAMS, SHA) as writer, pytest.raises(TypeError):
        writer.add(0, 0.0, False, np.zeros((68, 2)), np.zeros(16), np.zeros(28), b"", np.zeros(6))


def test_reader_returns_one_video_in_frame_order(tmp_path):
    rows = 16 * shards.ROW_GROUPS_PER_PART + 5  # two part files
    _write(tmp_path, "v", rows)
    table = shards.read_frames(tmp_path, "v", ["audio", "face_found"])
    assert table.column_names == ["frame", "audio", "face_found"]
    assert table.column("frame").to_pylist() == list(range(rows))
    audio = shards.list_column_as_array(table, "audio")
    assert audio.shape == (rows, 28) and audio.dtype == np.float32 and (audio[:, 0] == np.arange(rows)).all()
    batches = list(shards.iter_batches(tmp_path, "v", ["frame"], batch_size=100))
    assert np.concatenate([b.column("frame").to_numpy() for b in batches]).tolist() == list(range(rows))
    assert shards.video_metadata(tmp_path, "v") == shards.read_metadata(shards.part_files(tmp_path, "v")[0])
    with pytest.raises(FileNotFoundError):
        shards.read_frames(tmp_path, "missing", ["lips"])


def test_reader_of_some_frames_and_of_the_frames_with_a_face(tmp_path):
    rows = 16 * shards.ROW_GROUPS_PER_PART + 5  # two part files
    _write(tmp_path, "v", rows)
    with_face = shards.frames_with_face(tmp_path, "v")
    assert with_face.tolist() == [i for i in range(rows) if i % 3 != 0]
    asked = [rows - 1, 5, 2, 5]  # from both part files, out of order, one twice
    table = shards.read_frames(tmp_path, "v", ["audio"], frames=asked)
    assert table.column_names == ["frame", "audio"] and table.column("frame").to_pylist() == [2, 5, rows - 1]
    assert shards.list_column_as_array(table, "audio")[:, 0].tolist() == [2, 5, rows - 1]
    assert shards.read_frames(tmp_path, "v", ["face"], frames=[]).num_rows == 0
    with pytest.raises(ValueError, match=f"has no frame {rows}"):
        shards.read_frames(tmp_path, "v", ["face"], frames=[0, rows])
    schema = shards.video_schema(tmp_path, "v")
    assert schema.names == shards.frame_schema(PARAMS).names
    assert json.loads(schema.metadata[shards.METADATA_KEY]) == shards.video_metadata(tmp_path, "v")
    with pytest.raises(FileNotFoundError):
        shards.frames_with_face(tmp_path, "missing")


def test_reader_refuses_a_gap_in_the_frames(tmp_path):
    with shards.ShardWriter(tmp_path, "gap", PARAMS, SHA) as writer:
        for i in (0, 1, 3):
            writer.add(frame=i, time=i / 30, face_found=False, landmarks=np.zeros((68, 2)), lips=np.zeros(16),
                       audio=np.zeros(28), face=b"", crop=np.zeros(6))
        writer.commit()
    with pytest.raises(ValueError, match="without gaps"):
        shards.read_frames(tmp_path, "gap", ["lips"])


def test_evenly_spaced():
    assert shards.evenly_spaced(10, 3).tolist() == [0, 4, 9]
    assert shards.evenly_spaced(3, 8).tolist() == [0, 1, 2]
    assert shards.evenly_spaced(0, 8).tolist() == []


def test_is_current(tmp_path):
    key = rowkey.cache_key(PARAMS)
    assert not shards.is_current(tmp_path, "v", key, SHA)
    _write(tmp_path, "v", 5)
    assert shards.is_current(tmp_path, "v", key, SHA)
    assert not shards.is_current(tmp_path, "v", key, "cd" * 32)
    other_rows = PARAMS.model_copy(update={"jpeg_quality": 80})
    assert not shards.is_current(tmp_path, "v", rowkey.cache_key(other_rows), SHA)
    # How the run is spread over workers changes no row.
    runner = PARAMS.model_copy(update={"workers": 7, "task_runner": "dask", "dask_address": "tcp://h:8786"})
    assert shards.is_current(tmp_path, "v", rowkey.cache_key(runner), SHA)


def _edit(path, text):
    path.write_text(path.read_text() + text)


def test_code_digest_follows_the_row_making_code(tmp_path):
    package = tmp_path / "tasks"
    shutil.copytree(ROOT / "tasks", package, ignore=shutil.ignore_patterns("__pycache__"))
    names = [path.name for path in rowkey.row_code_files(package)]
    row_making = {"video.py", "align.py", "crop.py", "landmarks.py", "features.py", "decode.py", "shards.py"}
    assert row_making <= set(names)
    assert "params.py" not in names and "corpus.py" not in names and "inspect.py" not in names
    # Imported by shards.py, but making no row: the layout's names and the status tables.
    assert "paths.py" not in names and "tables.py" not in names
    original = rowkey.code_digest(package)
    assert original == rowkey.code_digest(ROOT / "tasks")
    # Not row-making code: the params module (its values are in the params digest) and the demo corpus.
    _edit(package / "config" / "params.py", "\n# a comment\n")
    _edit(package / "demo" / "corpus.py", "\n# a comment\n")
    assert rowkey.code_digest(package) == original
    _edit(package / "rows" / "align.py", "\n# a comment\n")
    changed = rowkey.code_digest(package)
    assert changed != original
    # A module the row-making code starts to import joins the key by being imported.
    (package / "blur.py").write_text("SIGMA = 1.0\n")
    assert rowkey.code_digest(package) == changed
    _edit(package / "rows" / "crop.py", "\nfrom tasks.blur import SIGMA  # noqa: E402\n")
    assert "blur.py" in [path.name for path in rowkey.row_code_files(package)]
    with_blur = rowkey.code_digest(package)
    _edit(package / "blur.py", "SIGMA = 2.0\n")
    assert rowkey.code_digest(package) != with_blur


def test_clean_temporaries(tmp_path):
    _write(tmp_path, "keep", 5)
    killed = _write(tmp_path, "killed", 20, commit=False)
    assert not killed.temp.exists()
    # What SIGKILL leaves (tasks/config/files.py names it): a temporary folder with a part file, an old
    # partition moved aside, and a half-written table.
    leftover = temporary_name(shards.partition_dir(tmp_path, "killed"))
    leftover.mkdir()
    (leftover / "part-0000.parquet").write_bytes(b"PAR1 half")
    aside = temporary_name(shards.partition_dir(tmp_path, "keep"))
    aside.mkdir()
    table = temporary_name(tmp_path / VIDEOS_TABLE)
    table.write_bytes(b"PAR1")
    assert sorted(shards.clean_temporaries(tmp_path)) == sorted([leftover, aside, table])
    assert [p.name for p in tmp_path.iterdir()] == ["video_id=keep"]


def test_videos_table_and_hive_reads(tmp_path):
    _write(tmp_path, "a", 20)
    _write(tmp_path, "b-2", 7)
    (tmp_path / ".video_id=c.tmp-1").mkdir()
    (tmp_path / ".video_id=c.tmp-1" / "part-0000.parquet").write_bytes(b"half")
    rows = [{"video_id": "a", "status": "ok", "error": "", "frames": 20, "frames_with_face": 13,
             "seconds": 1.5, "fps": 30.0, "source": "a.mp4", "sha256": SHA},
            {"video_id": "bad", "status": "failed", "error": "bad.mp4: no audio stream"}]
    path = shards.write_videos_table(tmp_path, rows)
    videos = pq.read_table(path)
    assert videos.schema == shards.VIDEOS_SCHEMA
    assert videos.column("status").to_pylist() == ["ok", "failed"]
    assert videos.column("frames").to_pylist() == [20, None]
    assert not list(tmp_path.glob("._videos*"))

    frames = pd.read_parquet(tmp_path)
    assert frames.groupby("video_id", observed=True).size().to_dict() == {"a": 20, "b-2": 7}
    # DuckDB's glob does not skip dot-folders: the pattern names the partition key.
    counts = duckdb.sql(
        f"select video_id, count(*) from read_parquet('{tmp_path}/video_id=*/*.parquet', "
        "hive_partitioning=true) group by video_id order by video_id").fetchall()
    assert counts == [("a", 20), ("b-2", 7)]


def test_inspect_prints_the_dataset_and_writes_a_sheet(tmp_path):
    face = simplejpeg.encode_jpeg(np.full((128, 128, 3), 120, np.uint8), colorspace="RGB")
    _write(tmp_path / "shards", "a", 30, face=face)
    _write(tmp_path / "shards", "b", 10, face=face)
    failed = {"video_id": "c", "status": "failed", "error": "c.mp4: truncated"}
    shards.write_videos_table(tmp_path / "shards", [failed])
    command = ["inspect", str(tmp_path / "shards"), "--sheet", str(tmp_path / "sheet.png")]
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("2 videos", "40", "26", "65.0%", "c.mp4: truncated", "fixed_size_list", "params_digest",
                 rows_digest(PARAMS), "cache_key", "feature_layout"):
        assert text in result.output
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size == (8 * 128, 3 * 128)  # 16 of the 20 faces of a, all 6 of b


def test_inspect_an_empty_folder_fails(tmp_path):
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 1 and "no video_id=<id>" in result.output


def test_the_preprocess_stage_depends_on_every_row_making_module():
    import yaml

    deps = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["preprocess"]["deps"])
    assert {f"tasks/{path.relative_to(rowkey.PACKAGE_DIR)}" for path in rowkey.row_code_files()} <= deps


def test_inspect_lists_the_failed_and_the_flagged_videos_of_the_last_run(tmp_path):
    from rich.console import Console

    from tasks.table.inspect import report
    from tasks.table.shards import write_videos_table

    shards = synthetic_shards(tmp_path / "shards", videos=2, frames=30)
    write_videos_table(shards, [
        {"video_id": "synthetic_0", "status": "ok", "error": "", "frames": 30, "frames_with_face": 6,
         "warning": "a face in 20% of frames: faces about 41 px wide"},
        {"video_id": "synthetic_1", "status": "ok", "error": "", "frames": 30, "frames_with_face": 29,
         "warning": ""},
        {"video_id": "broken", "status": "failed", "error": "broken.mp4: no video stream", "warning": ""},
    ])
    console = Console(record=True, width=200)
    report(shards, console)
    text = console.export_text()
    assert "failed or flagged in the last run" in text
    assert "faces about 41 px wide" in text and "broken.mp4: no video stream" in text
    flagged = text[text.index("failed or flagged"):text.index("schema")]
    assert "synthetic_1" not in flagged
