"""What is in a shards folder: videos, frames, faces, bytes, the schema and its metadata.

Reads only Parquet footers and the `face_found` column, so it is quick on any size of
dataset; `sample_faces` reads and decodes just the handful of crops a contact sheet shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from rich.console import Console
from rich.table import Table

from tasks.config.paths import VIDEOS_TABLE
from tasks.table.shards import (
    METADATA_KEY,
    PARTITION,
    evenly_spaced,
    frames_with_face,
    part_files,
    partition_counts,
    partition_dir,
    read_frames,
    read_videos_table,
    video_ids,
    video_metadata,
    video_schema,
)
from tasks.table.sheet import contact_sheet


@dataclass
class VideoSummary:
    video_id: str
    frames: int
    frames_with_face: int
    parts: int
    bytes: int


def summarize(shards: Path) -> list[VideoSummary]:
    summaries = []
    for video_id in video_ids(shards):
        parts = part_files(shards, video_id)
        frames, with_face = partition_counts(shards, video_id)
        size = sum(part.stat().st_size for part in parts)
        summaries.append(VideoSummary(video_id, frames, with_face, len(parts), size))
    return summaries


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def report(shards: Path, console: Console | None = None) -> list[VideoSummary]:
    """Print the per-video table, the totals, the last run's failures and the schema; return the summaries.
    ValueError for a folder with no video in it."""
    console = console or Console()
    shards = Path(shards)
    summaries = summarize(shards)
    if not summaries:
        raise ValueError(f"{shards}: no {PARTITION}=<id> partitions: not a frame table")

    videos = Table(title=f"{shards}: {len(summaries)} videos")
    for column in ("video", "frames", "with a face", "share", "parts", "on disk"):
        videos.add_column(column, justify="left" if column == "video" else "right")
    for s in summaries:
        videos.add_row(s.video_id, str(s.frames), str(s.frames_with_face),
                       f"{s.frames_with_face / max(s.frames, 1):.1%}", str(s.parts), _size(s.bytes))
    frames = sum(s.frames for s in summaries)
    with_face = sum(s.frames_with_face for s in summaries)
    videos.add_section()
    videos.add_row("total", str(frames), str(with_face), f"{with_face / max(frames, 1):.1%}",
                   str(sum(s.parts for s in summaries)), _size(sum(s.bytes for s in summaries)))
    console.print(videos)

    _print_problems(read_videos_table(shards), console)

    first = summaries[0].video_id
    schema = video_schema(shards, first)
    columns = Table(title=f"schema ({PARTITION} is the hive partition, a string)")
    columns.add_column("column")
    columns.add_column("type")
    for field in schema:
        columns.add_row(field.name, str(field.type))
    console.print(columns)
    meta = video_metadata(shards, first)
    metadata = Table(title=f"metadata '{METADATA_KEY.decode()}' of {partition_dir(shards, first).name}")
    metadata.add_column("key")
    metadata.add_column("value", overflow="fold")
    for key, value in meta.items():
        metadata.add_row(key, value if isinstance(value, str) else json.dumps(value))
    console.print(metadata)
    return summaries


def _print_problems(runs: list[dict], console: Console) -> None:
    """The videos of the last run that failed, or that were flagged (a face in under half the frames)."""
    rows = [row for row in runs if row["status"] == "failed" or row["warning"]]
    if rows:
        table = Table(title=f"failed or flagged in the last run ({VIDEOS_TABLE})")
        table.add_column("video")
        table.add_column("status")
        table.add_column("error or warning", overflow="fold")
        for row in rows:
            table.add_row(row["video_id"], row["status"], row["error"] or row["warning"] or "")
        console.print(table)


def sample_faces(shards: Path, count: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to `count` decoded crops with a face and their lips, spread evenly over videos and time."""
    ids = video_ids(shards)
    per_video = -(-count // max(len(ids), 1))
    faces, lips = [], []
    for video_id in ids:
        found = frames_with_face(shards, video_id)
        picked = found[evenly_spaced(len(found), per_video)]
        rows = read_frames(shards, video_id, ["face", "lips"], frames=picked)
        faces += [simplejpeg.decode_jpeg(jpeg, colorspace="RGB") for jpeg in rows.column("face").to_pylist()]
        lips += [np.asarray(points, np.float32) for points in rows.column("lips").to_pylist()]
    return faces[:count], lips[:count]


def write_sheet(shards: Path, out_png: Path, count: int = 32) -> Path:
    faces, lips = sample_faces(shards, count)
    if not faces:
        raise ValueError(f"{shards}: no frame with a face to put on a sheet")
    return contact_sheet(faces, lips, out_png, columns=8)
