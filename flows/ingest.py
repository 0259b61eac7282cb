"""Stage `ingest`: sources -> paths.videos / <video_id>.mp4 and paths.manifest (under
the project root, tasks/config/paths.py).

`data.source: demo` makes the offline demo corpus; `data.source: sources` fetches every line
of `data.sources_file` (URLs through yt-dlp, or local paths), one Prefect task per source,
retried with backoff. A source that fails is a `failed` row; the flow still finishes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.runtime import task_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.common import (
    count_statuses,
    failures_markdown,
    flow_project,
    publish_markdown,
    publish_table,
    record_params,
    run_stage,
)
from tasks.config.files import sha256_file
from tasks.config.params import DataParams, DemoParams, Params, digest
from tasks.config.paths import Paths
from tasks.demo import corpus as demo
from tasks.ingest.download import (
    SourceError,
    TransientError,
    check_source,
    failed_row,
    fetch,
    media_row,
    read_manifest,
    read_sources,
    write_manifest,
)


@task(name="fetch-source", task_run_name="fetch {source}")
def fetch_source(source: str, videos_dir: Path, params: DataParams, archive: Path) -> dict[str, Any]:
    """fetch() as a task: a known failure (SourceError) is a `failed` row, one line in the log;
    a transient one raises so that Prefect retries it (one line per retry), and is a `failed`
    row once the retries are spent. Only a bug leaves a traceback."""
    try:
        return fetch(source, videos_dir, params, archive)
    except SourceError as exc:
        return failed_row(source, str(exc))
    except TransientError as exc:
        if task_run.run_count > params.retries:
            return failed_row(source, str(exc))
        raise


@task(name="make-demo-corpus")
def make_demo(videos_dir: Path, params: DemoParams, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The demo clips, remade only when missing, changed on disk, or made with other demo params."""
    tag = f"demo:{digest(params)}"
    known = {row["url"]: row for row in previous if row["status"] in ("ok", "skipped")}
    names = [f"demo_{i:02d}" for i in range(params.clips)]
    current = all(
        (videos_dir / f"{name}.mp4").exists()
        and f"{tag}/{name}" in known
        and known[f"{tag}/{name}"]["sha256"] == sha256_file(videos_dir / f"{name}.mp4")
        for name in names
    )
    if not current:
        demo.make_demo_corpus(videos_dir, params)
    status = "skipped" if current else "ok"
    return [media_row(name, f"{tag}/{name}", videos_dir / f"{name}.mp4", status) for name in names]


def _fetch_all(sources: list[str], videos_dir: Path, params: DataParams,
               archive: Path) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    accepted = []
    for index, source in enumerate(sources):
        try:
            check_source(source)
        except SourceError as exc:
            # Refused, never fetched: it claims no video id, so a valid source of the same name keeps it.
            rows[index] = {**failed_row(source, str(exc)), "video_id": None}
            continue
        accepted.append(index)
    delay = exponential_backoff(backoff_factor=params.retry_delay_s) if params.retry_delay_s else 0
    fetcher = fetch_source.with_options(retries=params.retries, retry_delay_seconds=delay)
    futures = fetcher.map([sources[i] for i in accepted], unmapped(videos_dir), unmapped(params),
                          unmapped(archive))
    for index, future in zip(accepted, futures):
        result = future.result(raise_on_failure=False)
        if isinstance(result, BaseException):  # a bug: Prefect logged its traceback
            result = failed_row(sources[index], f"{sources[index]}: {type(result).__name__}: {result}")
        rows[index] = result
    return one_source_per_id([rows[i] for i in range(len(sources))])


def one_source_per_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first source that delivered a video keeps its id; a later one with the same id fails.
    Failed sources claim nothing."""
    seen: dict[str, str] = {}
    for row in rows:
        if row["status"] == "failed":
            continue
        if row["video_id"] in seen:
            row.update({key: None for key in row if key not in ("video_id", "url")})
            kept = seen[row["video_id"]]
            row.update(status="failed", error=f"{row['url']}: same video_id as {kept}, kept that one")
        else:
            seen[row["video_id"]] = row["url"]
    return rows


def _summary(rows: list[dict[str, Any]], seconds: float) -> str:
    counts = count_statuses(rows)
    size = sum(r["bytes"] or 0 for r in rows if r["status"] == "ok")
    lines = [
        "# Ingest",
        (f"{len(rows)} sources: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed, "
         f"in {seconds:.1f} s ({size / 1e6 / max(seconds, 1e-9):.1f} MB/s fetched)."),
    ]
    return "\n".join(lines + failures_markdown(rows, "source", "url"))


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=4))
def ingest(params_file: str | None = None, overrides: dict[str, Any] | None = None, root: str = ".",
           raw_dir: str | None = None) -> dict[str, int]:
    """Fetch every source (or make the demo corpus) into the project's raw folder and write its manifest."""
    # params_file, raw_dir: None is the project's (tasks/config/paths.py).
    logger = get_run_logger()
    paths, params = flow_project(root, params_file, overrides, raw=raw_dir)
    record_params("ingest", params, overrides, {"data", "demo"}, params_file or paths.params)
    paths.videos.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if params.data.source == "demo":
        rows = make_demo(paths.videos, params.demo, read_manifest(paths.manifest))
    else:
        sources_file = sources_path(params, paths)
        sources = read_sources(sources_file, params.data.limit)
        logger.info("%d sources from %s", len(sources), sources_file)
        rows = _fetch_all(sources, paths.videos, params.data, paths.download_archive)
    write_manifest(paths.manifest, rows)
    seconds = time.perf_counter() - start
    summary = _summary(rows, seconds)
    publish_table("ingest-manifest", rows, f"{len(rows)} sources -> {paths.videos}")
    publish_markdown("ingest-summary", summary, "ingest counts and failures")
    for row in rows:
        if row["status"] == "failed":
            logger.warning("failed: %s", row["error"])
    logger.info(summary.splitlines()[1])
    return count_statuses(rows)


def sources_path(params: Params, paths: Paths) -> Path:
    """data.sources_file, relative to the project root."""
    return paths.root / params.data.sources_file


def sources_problem(params: Params, paths: Paths) -> str | None:
    """What stops the stage before it starts (one line), or None: a sources file that is not there."""
    if params.data.source == "sources":
        try:
            read_sources(sources_path(params, paths))
        except SourceError as exc:
            return str(exc)
    return None


if __name__ == "__main__":
    run_stage(ingest, preflight=sources_problem)
