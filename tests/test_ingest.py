"""The ingest flow against real sources: a loopback HTTP server, local files, and bad inputs."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import LogLines

from flows.ingest import ingest
from tasks.ingest.download import (
    SourceError,
    check_source,
    failed_row,
    read_sources,
    source_id,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("prefect_server")


def make_clip(path: Path, seconds: float = 1.5, size: str = "320x240", rate: int = 25) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={rate}",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """`python -m http.server` on 127.0.0.1 serving two clips, a text file and an HTML page."""
    root = tmp_path_factory.mktemp("www")
    make_clip(root / "talk_a.mp4")
    make_clip(root / "talk_b.mp4", seconds=1.0, size="1280x720", rate=30)
    (root / "notes.txt").write_text("not a video\n")
    (root / "index.html").write_text("<html><body>no video here</body></html>")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def run_ingest(sources: list[str], tmp_path: Path, raw: Path, **overrides) -> dict:
    listing = tmp_path / "sources.txt"
    listing.write_text("# test sources\n\n" + "\n".join(sources) + "\n")
    settings = {
        "data.source": "sources",
        "data.sources_file": str(listing),
        "data.retry_delay_s": 0.1,
        "data.retries": 1,
        **overrides,
    }
    return ingest(params_file=str(ROOT / "params.yaml"), overrides=settings, raw_dir=str(raw))


def manifest(raw: Path) -> dict[str, dict]:
    return {row["url"]: row for row in pq.read_table(raw / "manifest.parquet").to_pylist()}


def test_good_sources_succeed_and_bad_ones_fail_with_readable_errors(http_server, tmp_path):
    local = make_clip(tmp_path / "local talk (1).mov")
    closed_port = free_port()
    sources = [
        f"{http_server}/talk_a.mp4",
        f"{http_server}/talk_b.mp4",
        str(local),
        f"{http_server}/missing.mp4",
        f"{http_server}/notes.txt",
        f"{http_server}/",
        "file:///etc/passwd",
        "ftp://127.0.0.1/talk.mp4",
        str(tmp_path / "no_such_file.mp4"),
        f"http://127.0.0.1:{closed_port}/talk.mp4",
    ]
    raw = tmp_path / "raw"
    counts = run_ingest(sources, tmp_path, raw)
    assert counts == {"ok": 3, "skipped": 0, "failed": 7}
    rows = manifest(raw)
    assert list(rows) == sources, "one row per source, in order"

    a = rows[f"{http_server}/talk_a.mp4"]
    assert a["status"] == "ok" and a["video_id"] == "talk_a" and a["error"] is None
    assert (raw / "videos" / "talk_a.mp4").stat().st_size == a["bytes"]
    assert a["width"] == 320 and a["height"] == 240 and a["fps"] == pytest.approx(25)
    assert a["duration"] == pytest.approx(1.5, abs=0.1) and len(a["sha256"]) == 64

    local_row = rows[str(local)]
    assert local_row["status"] == "ok" and local_row["video_id"] == "local_talk_1"
    assert (raw / "videos" / "local_talk_1.mp4").exists(), "a .mov is converted to mp4"

    def error(source: str) -> str:
        row = rows[source]
        assert row["status"] == "failed" and row["error"], source
        return row["error"]

    assert "404" in error(f"{http_server}/missing.mp4")
    assert "not a video" in error(f"{http_server}/notes.txt")
    assert "Unsupported URL" in error(f"{http_server}/")
    assert "scheme 'file' refused" in error("file:///etc/passwd")
    assert "scheme 'ftp' refused" in error("ftp://127.0.0.1/talk.mp4")
    assert "no such file" in error(str(tmp_path / "no_such_file.mp4"))
    assert "Connection refused" in error(f"http://127.0.0.1:{closed_port}/talk.mp4")
    # Nothing half-written is left beside the videos.
    fetched = sorted(p.name for p in (raw / "videos").iterdir())
    assert fetched == ["local_talk_1.mp4", "talk_a.mp4", "talk_b.mp4"]


def test_max_height_limits_what_is_accepted(http_server, tmp_path):
    raw = tmp_path / "raw"
    counts = run_ingest([f"{http_server}/talk_b.mp4"], tmp_path, raw, **{"data.max_height": 480})
    # A plain file offers one format of unknown height to yt-dlp: it is taken, then probed.
    assert counts["ok"] + counts["failed"] == 1
    row = manifest(raw)[f"{http_server}/talk_b.mp4"]
    assert row["height"] in (720, None)


def test_rerun_skips_what_exists(http_server, tmp_path):
    raw = tmp_path / "raw"
    local = make_clip(tmp_path / "local.mp4")
    sources = [f"{http_server}/talk_a.mp4", str(local)]
    assert run_ingest(sources, tmp_path, raw) == {"ok": 2, "skipped": 0, "failed": 0}
    first = {p.name: p.stat().st_mtime_ns for p in (raw / "videos").iterdir()}
    archive = (raw / "download_archive.txt").read_text().split()
    assert "talk_a" in archive
    assert run_ingest(sources, tmp_path, raw) == {"ok": 0, "skipped": 2, "failed": 0}
    assert {p.name: p.stat().st_mtime_ns for p in (raw / "videos").iterdir()} == first
    assert all(row["sha256"] for row in manifest(raw).values())


def test_sources_file_forms(tmp_path):
    tsv = tmp_path / "corpus.tsv"
    tsv.write_text("youtube_id\tdate\nabc123XYZ_-\tMay 07, 2016\nq-w_e\tApril 30, 2016\n")
    urls = read_sources(tsv)
    assert urls == ["https://www.youtube.com/watch?v=abc123XYZ_-", "https://www.youtube.com/watch?v=q-w_e"]
    assert [source_id(u) for u in urls] == ["abc123XYZ_-", "q-w_e"]
    assert read_sources(tsv, limit=1) == urls[:1]
    real = read_sources(ROOT / "data" / "sources" / "obama_weekly_addresses.tsv")
    assert len(real) > 250 and all(u.startswith("https://www.youtube.com/watch?v=") for u in real)
    with pytest.raises(SourceError, match="sources file not found"):
        read_sources(tmp_path / "none.txt")


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd",
        "ftp://host/x.mp4",
        "data:video/mp4;base64,AAAA",
        "javascript:alert(1)",
        "https://",
        "smb://host/share/x.mp4",
    ],
)
def test_only_http_https_and_paths(source):
    with pytest.raises(SourceError):
        check_source(source)


def test_ids_are_safe():
    assert source_id("https://example.org/a/../../etc/pass wd.mp4") == "pass_wd"
    assert source_id("/tmp/$(rm -rf ~).mp4") == "rm_-rf"
    assert source_id("https://www.youtube.com/watch?v=2AFpAATHXtc&t=3") == "2AFpAATHXtc"
    assert source_id("https://example.org/") == "example_org"


def test_a_manifest_write_that_fails_leaves_no_temporary_file(tmp_path):
    raw = tmp_path / "raw"
    manifest = raw / "manifest.parquet"
    manifest.mkdir(parents=True)  # in the way: the write fails at the rename, after the table is written
    with pytest.raises(OSError):
        write_manifest(manifest, [failed_row("x.mp4", "x.mp4: no such file")])
    assert [p.name for p in raw.iterdir()] == ["manifest.parquet"] and manifest.is_dir()


def test_demo_stage_under_dvc_runs_once(tmp_path):
    """`dvc repro ingest` makes the demo corpus; a second `dvc repro ingest` does nothing."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", "bin", "flows", "tasks", "data/sources"):
        src = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    params = (repo / "params.yaml").read_text()
    params = params.replace("clips: 6", "clips: 1").replace("seconds: 10.0", "seconds: 3.0")
    (repo / "params.yaml").write_text(params)
    env_bin = Path(sys.executable).parent
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}  # the copy has no .venv: bin/python takes the active one

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, check=True)

    run("git", "init", "-q")
    run(str(env_bin / "dvc"), "init", "-q")
    first = run(str(env_bin / "dvc"), "repro", "ingest")
    assert "Running stage 'ingest'" in first.stdout
    rows = pq.read_table(repo / "data/raw/manifest.parquet").to_pylist()
    assert [r["video_id"] for r in rows] == ["demo_00"] and rows[0]["status"] == "ok"
    assert rows[0]["duration"] == pytest.approx(3.0, abs=0.1)
    second = run(str(env_bin / "dvc"), "repro", "ingest")
    assert "Running stage" not in second.stdout and "didn't change" in second.stdout


def test_a_refused_source_claims_no_id(tmp_path):
    local = make_clip(tmp_path / "clip.mp4")
    sources = [f"file://{local}", str(local)]
    raw = tmp_path / "raw"
    assert run_ingest(sources, tmp_path, raw) == {"ok": 1, "skipped": 0, "failed": 1}
    rows = manifest(raw)
    assert rows[sources[0]]["status"] == "failed" and "scheme 'file' refused" in rows[sources[0]]["error"]
    assert rows[sources[0]]["video_id"] is None
    assert rows[str(local)]["status"] == "ok" and rows[str(local)]["video_id"] == "clip"
    # Two sources that do deliver the same id: the first keeps it.
    other = tmp_path / "other"
    other.mkdir()
    twin = make_clip(other / "clip.mp4", seconds=1.0)
    assert run_ingest([str(local), str(twin)], tmp_path, tmp_path / "raw2")["failed"] == 1
    assert "same video_id" in manifest(tmp_path / "raw2")[str(twin)]["error"]


def test_expected_failures_log_one_line_each(http_server, tmp_path):
    log = LogLines()
    loggers = [logging.getLogger("prefect"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(log)
    missing_file = str(tmp_path / "no_such_file.mp4")
    closed = f"http://127.0.0.1:{free_port()}/talk.mp4"  # transient: retried, then failed
    sources = [
        f"{http_server}/missing.mp4",
        missing_file,
        "file:///x/clip.mp4",
        f"{http_server}/notes.txt",
        closed,
    ]
    try:
        counts = run_ingest(sources, tmp_path, tmp_path / "raw")
    finally:
        for logger in loggers:
            logger.removeHandler(log)
    assert counts == {"ok": 0, "skipped": 0, "failed": 5}
    text = "\n".join(log.lines)
    assert "Traceback" not in text
    failures = [line for line in log.lines if line.startswith("failed: ")]
    assert len(failures) == 5 and all("\n" not in line for line in failures)
    for expected in ("404", "no such file", "scheme 'file' refused", "not a video", "Connection refused"):
        assert sum(expected in line for line in failures) == 1, expected


def test_a_missing_sources_file_stops_the_stage_with_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  source: sources\n  sources_file: nowhere.txt\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "flows.ingest"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: nowhere.txt: sources file not found"
