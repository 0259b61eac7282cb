"""The `preprocess` flow: every raw video -> its partition of the frame table in paths.shards (under
the project root, tasks/config/paths.py).

One task run per video (tasks/ingest/video.py), mapped over the task runner that
`preprocess.task_runner` names: threads, processes, or a Dask cluster (an existing one at
`preprocess.dask_address`, else a local one). A video whose shard is current (same source
bytes, same row-making params and code: tasks/rows/rowkey.py) is skipped; a bad video is a
`failed` row, never a failed run; a video with a face in under half its frames is flagged
with the likely cause (the `warning` column, the summary's warnings table).

    python -m flows.preprocess            # the DVC stage: params.yaml, paths.raw -> paths.shards
    python -m flows.preprocess --root R   # the same in the project at R
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from flows.common import (
    count_statuses,
    failures_markdown,
    flow_project,
    publish_markdown,
    publish_table,
    record_params,
    run_stage,
)
from tasks.config.params import PreprocessParams
from tasks.config.paths import Paths
from tasks.ingest.download import read_manifest
from tasks.ingest.video import preprocess_video
from tasks.table.shards import clean_temporaries, read_videos_table, remove_stale, write_videos_table

USABLE_SOURCES = ("ok", "skipped")


def task_runner_for(params: PreprocessParams) -> TaskRunner:
    if params.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=params.workers)
    if params.task_runner == "processes":
        return ProcessPoolTaskRunner(max_workers=params.workers)
    from prefect_dask import DaskTaskRunner

    if params.dask_address:
        return DaskTaskRunner(address=params.dask_address)
    # One thread per worker process: dlib and the JPEG encoder hold the GIL for most of a frame.
    cluster = {"n_workers": params.workers, "threads_per_worker": 1, "processes": True}
    return DaskTaskRunner(cluster_kwargs=cluster)


def find_videos(raw_dir: Path, video_ids: list[str] | None = None) -> list[Path]:
    """The videos ingest delivered into `raw_dir`: the manifest's usable rows, or every mp4 when there
    is no manifest."""
    raw = Paths.at(raw=raw_dir)
    videos, manifest = raw.videos, raw.manifest
    if manifest.exists():
        rows = read_manifest(manifest)
        paths = [videos / f"{row['video_id']}.mp4" for row in rows if row["status"] in USABLE_SOURCES]
    else:
        paths = sorted(videos.glob("*.mp4"))
    if video_ids is not None:
        wanted = set(video_ids)
        paths = [path for path in paths if path.stem in wanted]
    return paths


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    updated = {row["video_id"]: row for row in new}
    kept = [row for row in old if row["video_id"] not in updated]
    return sorted(kept + new, key=lambda row: row["video_id"])


def summary_markdown(rows: list[dict[str, Any]], wall_seconds: float) -> str:
    counts = count_statuses(rows)
    written = [row for row in rows if row["status"] == "ok"]
    frames = sum(row["frames"] for row in written)
    busy = sum(row["seconds"] for row in written)
    lines = [
        "# preprocess",
        "",
        (f"- videos: {len(rows)} ({counts['ok']} written, {counts['skipped']} skipped as current, "
         f"{counts['failed']} failed)"),
        f"- frames written: {frames}, with a face: {sum(row['frames_with_face'] for row in written)}",
        (f"- time: {wall_seconds:.1f} s wall, {busy:.1f} s in tasks, "
         f"{frames / busy if busy else 0.0:.1f} frames/s per task"),
    ]
    return "\n".join(lines + warnings_markdown(rows) + failures_markdown(rows, "video", "video_id")) + "\n"


def warnings_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of a table of the videos with a face in too few frames, and the likely cause."""
    flagged = [row for row in rows if row.get("warning")]
    if not flagged:
        return []
    lines = ["", "## Warnings: few frames with a face", "", "| video | warning |", "| --- | --- |"]
    return lines + [f"| {row['video_id']} | {row['warning'].replace('|', '/')} |" for row in flagged]


@flow(name="preprocess")
def preprocess(params_file: str | None = None, overrides: dict[str, Any] | None = None, root: str = ".",
               raw_dir: str | None = None, shards_dir: str | None = None,
               video_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Build the project's frame table from its raw videos and return one stats row per video."""
    # params_file, raw_dir, shards_dir: None is the project's (tasks/config/paths.py).
    started = time.perf_counter()
    logger = get_run_logger()
    paths, all_params = flow_project(root, params_file, overrides, raw=raw_dir, shards=shards_dir)
    record_params("preprocess", all_params, overrides, {"preprocess"}, params_file or paths.params)
    params = all_params.preprocess
    shards_root = paths.shards
    shards_root.mkdir(parents=True, exist_ok=True)
    for leftover in clean_temporaries(shards_root):
        logger.info("removed %s, left by an interrupted run", leftover)

    videos = find_videos(paths.raw, video_ids)
    logger.info("%d videos, task runner %s with %d workers", len(videos), params.task_runner, params.workers)
    # The runner comes from params, so it is opened here rather than fixed on the decorator:
    # a deployment run and `python -m flows.preprocess` both honour preprocess.task_runner.
    with task_runner_for(params) as runner:
        futures = runner.map(preprocess_video, {"path": videos, "shards_root": unmapped(shards_root),
                                                "params": unmapped(params)})
        rows = [future.result() for future in futures]

    # A run over some videos updates their rows and keeps the others'.
    table = rows if video_ids is None else merge_rows(read_videos_table(shards_root), rows)
    write_videos_table(shards_root, table)
    if video_ids is None:
        for video_id in remove_stale(shards_root, {row["video_id"] for row in rows}):
            logger.info("removed the partition of %s: no longer among the raw videos", video_id)
    for row in rows:
        if row["status"] == "failed":
            logger.warning("%s failed: %s", row["video_id"], row["error"])
        else:
            logger.info("%s %s: %d frames, %d with a face, %.1f s", row["video_id"], row["status"],
                        row["frames"], row["frames_with_face"], row["seconds"])
            if row["warning"]:
                logger.warning("%s: %s", row["video_id"], row["warning"])
    publish_table("preprocess-videos", rows,
                  "One row per video: status, frames, frames with a face, seconds, warning")
    publish_markdown("preprocess-summary", summary_markdown(rows, time.perf_counter() - started),
                     "What the preprocess run wrote, skipped and failed")
    return rows


if __name__ == "__main__":
    run_stage(preprocess)
