"""The frame table on disk: hive-partitioned Parquet, one partition per video, written atomically.

    <shards>/video_id=<id>/part-0000.parquet ...   one row per frame (ARCHITECTURE.md, the frame table)
    paths.videos_table                       one row per video of the last run

A partition is written into a hidden temporary folder beside it (tasks/config/files.py, atomic_path) and
renamed into place only once every part is closed, so a reader sees a video whole or not at all. Names that
start with `.` or `_` are skipped by pyarrow, pandas and Polars dataset readers, so the
temporary folders and `_videos.parquet` never mix into a read of the folder. DuckDB's
glob does not skip them: read `<shards>/video_id=*/*.parquet` with hive_partitioning.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import simplejpeg

from tasks.config.files import atomic_path
from tasks.config.params import PreprocessParams, rows_digest
from tasks.config.paths import VIDEOS_TABLE
from tasks.rows.crop import CROP_DIM
from tasks.rows.features import feature_dim, params_layout
from tasks.rows.landmarks import LANDMARKS_DIM, LIPS_DIM
from tasks.rows.rowkey import FORMAT_VERSION, cache_key, code_digest
from tasks.table.tables import read_status_table, write_status_table

METADATA_KEY = b"reenact"
PARTITION = "video_id"
# A part file holds this many row groups (~9 min of 30 fps video at 1024 rows a group):
# big enough to be efficient, small enough to copy and inspect one at a time.
ROW_GROUPS_PER_PART = 16

# One row per video of the last run (tasks/table/tables.py).
VIDEOS_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("frames", pa.int64()),
    ("frames_with_face", pa.int64()),
    ("seconds", pa.float64()),
    ("fps", pa.float64()),
    ("source", pa.string()),
    ("sha256", pa.string()),
    # Why a video has a face in under half its frames (tasks/ingest/video.py face_warning); "" with enough.
    ("warning", pa.string()),
])


def frame_schema(params: PreprocessParams) -> pa.Schema:
    """Columns of a part file; `video_id` is not among them, it lives in the folder name."""
    return pa.schema([
        ("frame", pa.int32()),
        ("time", pa.float64()),
        ("face_found", pa.bool_()),
        ("landmarks", pa.list_(pa.float32(), LANDMARKS_DIM)),
        ("lips", pa.list_(pa.float32(), LIPS_DIM)),
        ("audio", pa.list_(pa.float32(), feature_dim(params))),
        ("face", pa.binary()),
        ("crop", pa.list_(pa.float32(), CROP_DIM)),
    ])


def shard_metadata(params: PreprocessParams, sha256: str) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "fps": params.fps,
        "sample_rate": params.sample_rate,
        "face_size": params.face_size,
        "lip_indices": list(params.lip_indices),
        "feature_layout": params_layout(params),
        # What makes the shard current (tasks/rows/rowkey.py): the key, and what it is made of.
        "cache_key": cache_key(params),
        "params_digest": rows_digest(params),
        "code_digest": code_digest(),
        "source_sha256": sha256,
    }


def partition_dir(shards: Path, video_id: str) -> Path:
    return Path(shards) / f"{PARTITION}={video_id}"


def video_ids(shards: Path) -> list[str]:
    """Ids of the complete partitions; temporary folders start with '.' and are not matched."""
    folders = Path(shards).glob(f"{PARTITION}=*")
    return sorted(path.name.partition("=")[2] for path in folders if path.is_dir())


def remove_stale(shards: Path, keep: set[str]) -> list[str]:
    """Delete the partitions of videos that are no longer sources, so readers never see them."""
    stale = [video_id for video_id in video_ids(shards) if video_id not in keep]
    for video_id in stale:
        shutil.rmtree(partition_dir(shards, video_id))
    return stale


def part_files(shards: Path, video_id: str) -> list[Path]:
    return sorted(partition_dir(shards, video_id).glob("part-*.parquet"))


def read_metadata(path: Path) -> dict[str, Any]:
    """The `reenact` metadata of one part file (an empty dict when it has none)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def is_current(shards: Path, video_id: str, key: str, sha256: str) -> bool:
    """True when the video's partition exists and was made from this source under this cache key
    (tasks.rows.rowkey.cache_key: the row-making params and code)."""
    parts = part_files(shards, video_id)
    if not parts:
        return False
    try:
        meta = read_metadata(parts[0])
    except (OSError, pa.ArrowInvalid, json.JSONDecodeError):
        return False
    return meta.get("cache_key") == key and meta.get("source_sha256") == sha256


def clean_temporaries(shards: Path) -> list[Path]:
    """Remove what a killed run left behind: the hidden temporaries of partitions and of the videos
    table (tasks/config/files.py, temporary_name). Call it before a run starts writing, never during."""
    shards = Path(shards)
    removed = []
    for path in [*shards.glob(f".{PARTITION}=*"), *shards.glob(f".{Path(VIDEOS_TABLE).stem}.*")]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class ShardWriter:
    """Streams one video's rows into row groups and publishes its partition on `commit()`.

    Use as a context manager: leaving the block by an exception, or without commit(),
    deletes the temporary folder and leaves any earlier partition of the video untouched.
    """

    def __init__(self, shards: Path, video_id: str, params: PreprocessParams, sha256: str):
        self.final = partition_dir(shards, video_id)
        # Open until commit() publishes the folder or abort() discards it.
        self._publish = atomic_path(self.final)
        self.temp = self._publish.__enter__()
        self.temp.mkdir()
        metadata = {METADATA_KEY: json.dumps(shard_metadata(params, sha256)).encode()}
        self.schema = frame_schema(params).with_metadata(metadata)
        self.row_group_size = params.row_group_size
        self.rows = 0
        self._buffer: dict[str, list] = {name: [] for name in self.schema.names}
        self._writer: pq.ParquetWriter | None = None
        self._parts = 0
        self._groups_in_part = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.abort()

    def add(self, *, frame: int, time: float, face_found: bool, landmarks: np.ndarray, lips: np.ndarray,
            audio: np.ndarray, face: bytes, crop: np.ndarray) -> None:
        row = (frame, time, face_found, landmarks, lips, audio, face, crop)
        for name, value in zip(self.schema.names, row):
            self._buffer[name].append(value)
        self.rows += 1
        if len(self._buffer["frame"]) >= self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer["frame"]:
            return
        columns = []
        for field in self.schema:
            values = self._buffer[field.name]
            if pa.types.is_fixed_size_list(field.type):
                flat = np.stack([np.asarray(v, np.float32).reshape(-1) for v in values]).reshape(-1)
                columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()),
                                                                 field.type.list_size))
            else:
                columns.append(pa.array(values, field.type))
        if self._writer is None or self._groups_in_part >= ROW_GROUPS_PER_PART:
            self._close_part()
            path = self.temp / f"part-{self._parts:04d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self._parts += 1
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema),
                                 row_group_size=self.row_group_size)
        self._groups_in_part += 1
        self._buffer = {name: [] for name in self.schema.names}

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._groups_in_part = 0

    def commit(self) -> None:
        """Close the last part and swap the finished partition in for the old one."""
        self._flush()
        self._close_part()
        if self._parts == 0:
            raise ValueError(f"{self.final.name}: no rows to write")
        # The old partition is moved aside first: between the two renames a reader misses this
        # video; it never sees a half-written one.
        publish, self._publish = self._publish, None
        publish.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard what is written (nothing once committed); an earlier partition stays as it was."""
        self._close_part()
        if self._publish is not None:
            publish, self._publish = self._publish, None
            discarded = RuntimeError(f"{self.final.name}: not committed")
            publish.__exit__(type(discarded), discarded, None)


def partition_counts(shards: Path, video_id: str) -> tuple[int, int]:
    """(frames, frames with a face) of a written partition, read from its `face_found` column."""
    frames = with_face = 0
    for path in part_files(shards, video_id):
        column = pq.read_table(path, columns=["face_found"]).column("face_found")
        frames += len(column)
        with_face += int(pc.sum(column).as_py() or 0)
    return frames, with_face


def read_videos_table(shards: Path) -> list[dict[str, Any]]:
    """The rows of the shards folder's `_videos.parquet`; none before the first run."""
    return read_status_table(Path(shards) / VIDEOS_TABLE, VIDEOS_SCHEMA)


def write_videos_table(shards: Path, rows: list[dict[str, Any]]) -> Path:
    """`_videos.parquet` in the shards folder: one row per video of the run, replaced atomically."""
    return write_status_table(rows, Path(shards) / VIDEOS_TABLE, VIDEOS_SCHEMA)


# -- Reading: the one place that knows how the frame table lies on disk ----------------------


def _existing_parts(shards: Path, video_id: str) -> list[Path]:
    parts = part_files(shards, video_id)
    if not parts:
        raise FileNotFoundError(f"{partition_dir(shards, video_id)}: no part-*.parquet")
    return parts


def read_frames(shards: Path, video_id: str, columns: list[str],
                frames: Sequence[int] | np.ndarray | None = None) -> pa.Table:
    """One video's rows, `frame` and the given columns, in frame order: every row, or only those of
    `frames` (each once; row groups without them are skipped). No frame is ever dropped
    (ARCHITECTURE.md), so a video's frames must be 0..n-1 without gaps and each frame asked for must
    be there: anything else is a ValueError."""
    parts = _existing_parts(shards, video_id)
    wanted = ["frame", *(name for name in columns if name != "frame")]
    if frames is not None:
        return _read_some_frames(parts, wanted, frames, partition_dir(shards, video_id))
    table = pa.concat_tables([pq.read_table(path, columns=wanted) for path in parts]).sort_by("frame")
    frame = table.column("frame").to_numpy()
    if not np.array_equal(frame, np.arange(len(frame))):
        folder = partition_dir(shards, video_id)
        raise ValueError(f"{folder}: frames are not 0..{len(frame) - 1} without gaps")
    return table


def _read_some_frames(parts: list[Path], columns: list[str], frames: Sequence[int] | np.ndarray,
                      folder: Path) -> pa.Table:
    asked = pa.array(np.unique(np.asarray(frames, np.int64)), pa.int32())
    dataset = ds.dataset([str(path) for path in parts], format="parquet")
    table = dataset.to_table(columns=columns, filter=ds.field("frame").isin(asked)).sort_by("frame")
    if table.num_rows != len(asked):
        missing = sorted(set(asked.to_pylist()) - set(table.column("frame").to_pylist()))
        raise ValueError(f"{folder}: has no frame {', '.join(map(str, missing[:5]))}")
    return table


def frames_with_face(shards: Path, video_id: str) -> np.ndarray:
    """The numbers of a video's frames with a face (`face_found`), ascending."""
    found = read_frames(shards, video_id, ["face_found"]).column("face_found")
    return np.flatnonzero(found.to_numpy(zero_copy_only=False))


def iter_batches(shards: Path, video_id: str, columns: list[str],
                 batch_size: int = 256) -> Iterator[pa.RecordBatch]:
    """One video's rows in frame order, a batch at a time: memory holds one batch, not the video.
    Parts and their row groups are written in frame order, so reading them in turn is that order."""
    for path in part_files(shards, video_id):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def video_schema(shards: Path, video_id: str) -> pa.Schema:
    """The columns of a video's partition and their types, with the `reenact` metadata."""
    return pq.read_schema(_existing_parts(shards, video_id)[0])


def video_metadata(shards: Path, video_id: str) -> dict[str, Any]:
    """The `reenact` metadata of a video's partition (fps, face_size, lip_indices, ...)."""
    return read_metadata(_existing_parts(shards, video_id)[0])


def list_column_as_array(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size list column (`lips`, `audio`, `landmarks`, `crop`) as a (rows, width) float32 array."""
    column = table.column(name)
    width = column.type.list_size
    flat = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    return np.concatenate(flat or [np.zeros(0, np.float32)]).astype(np.float32).reshape(-1, width)


def decode_crops(faces: pa.Array, indices: np.ndarray) -> np.ndarray:
    """(n, S, S, 3) uint8 RGB: the JPEG crops (the frame table's `face`) at `indices`."""
    return np.stack([simplejpeg.decode_jpeg(faces[int(i)].as_py(), colorspace="RGB") for i in indices])


def evenly_spaced(n: int, count: int) -> np.ndarray:
    """Up to `count` distinct indices into n rows, spread evenly with the first and last included:
    the same picks every call, for samples that must not change between epochs or runs."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).astype(int))
