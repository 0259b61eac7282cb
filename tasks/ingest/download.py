"""Fetch one source (a URL through yt-dlp's Python API, or a local file) into paths.videos.

Only http, https and local paths are accepted; no shell is ever run. Every outcome is a
manifest row; errors that a retry may cure (timeouts, refused connections, 5xx) raise
`TransientError` so the Prefect task around `fetch` retries them with backoff.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import yt_dlp

from tasks.config.files import atomic_path, safe_id, sha256_file
from tasks.config.params import DataParams
from tasks.rows.decode import DecodeError, probe
from tasks.table.tables import read_status_table, write_status_table

# The manifest, one row per source of the last ingest (tasks/table/tables.py).
MANIFEST_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("url", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("duration", pa.float64()), ("fps", pa.float64()), ("width", pa.int32()), ("height", pa.int32()),
    ("bytes", pa.int64()), ("sha256", pa.string()),
])
YOUTUBE_WATCH = "https://www.youtube.com/watch?v="


class SourceError(RuntimeError):
    """A source that cannot be fetched; retrying will not help."""


class TransientError(RuntimeError):
    """A source that failed in a way a retry may cure."""


def read_sources(path: str | Path, limit: int = 0) -> list[str]:
    """One URL or local path per line ('#' comments, blank lines ignored), or a TSV with a
    youtube_id column."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: sources file not found")
    lines = [line.strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines and "youtube_id" in lines[0].split("\t"):
        column = lines[0].split("\t").index("youtube_id")
        sources = [YOUTUBE_WATCH + row.split("\t")[column] for row in lines[1:]]
    else:
        sources = lines
    return sources[:limit] if limit else sources


def check_source(source: str) -> str:
    """'url' or 'path'; refuses every other scheme (file://, ftp://, data:, ...)."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise SourceError(f"{source!r}: URL has no host")
        return "url"
    # A one-letter "scheme" is a Windows drive, not a URL.
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(f"{source!r}: scheme '{parsed.scheme}' refused; "
                          "only http, https and local paths are accepted")
    return "path"


def source_id(source: str) -> str:
    """The video id a source will have, guessed before fetching (used for rows of failed sources)."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https") and "youtube.com" in parsed.netloc and "v=" in parsed.query:
        return safe_id(parsed.query.split("v=", 1)[1].split("&", 1)[0])
    return safe_id(Path(parsed.path).stem or parsed.netloc or source)


def media_row(video_id: str, url: str, path: Path, status: str) -> dict[str, Any]:
    info = probe(path)
    if not info.has_video:
        raise SourceError(f"{url}: has no video stream")
    return {
        "video_id": video_id, "url": url, "status": status, "error": None,
        "duration": info.duration, "fps": info.fps, "width": info.width, "height": info.height,
        "bytes": path.stat().st_size, "sha256": sha256_file(path),
    }


def failed_row(source: str, error: str, video_id: str | None = None) -> dict[str, Any]:
    row = dict.fromkeys(MANIFEST_SCHEMA.names)
    row.update(video_id=video_id or source_id(source), url=source, status="failed", error=error)
    return row


def _copy_local(source: str, target: Path) -> None:
    """Copy an mp4 as it is; anything else ffmpeg reads is converted to H.264 + AAC mp4."""
    src = Path(source).expanduser()
    if not src.is_file():
        raise SourceError(f"{source}: no such file")
    try:
        if not probe(src).has_video:
            raise SourceError(f"{source}: has no video stream")
    except DecodeError as exc:
        raise SourceError(str(exc)) from None
    with atomic_path(target) as temp:
        if src.suffix.lower() == ".mp4":
            shutil.copyfile(src, temp)
        else:
            command = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(src),
                       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(temp)]
            done = subprocess.run(command, check=False, capture_output=True, text=True)
            if done.returncode:
                raise SourceError(f"{source}: conversion to mp4 failed: {done.stderr.strip()[-300:]}")


class _YtDlpLog:
    """yt-dlp's messages at debug level: failures reach the user once, as the manifest row's error."""

    _log = logging.getLogger("reenact.yt_dlp")

    def debug(self, message: str) -> None:
        self._log.debug(message)

    info = warning = error = debug


def _ydl_options(params: DataParams, archive: Path, out_dir: Path | None = None) -> dict[str, Any]:
    height = params.max_height
    options: dict[str, Any] = {
        # mp4 with audio, at most max_height; '?' keeps formats whose height is unknown (plain files).
        "format": (f"bv*[height<=?{height}][ext=mp4]+ba[ext=m4a]/b[height<=?{height}][ext=mp4]"
                   f"/bv*[height<=?{height}]+ba/b[height<=?{height}]"),
        "merge_output_format": "mp4",
        "download_archive": str(archive),
        "socket_timeout": params.socket_timeout_s,
        "retries": 0,  # Prefect retries the whole source with backoff
        "quiet": True, "noprogress": True, "noplaylist": True,
        "logger": _YtDlpLog(),
    }
    if out_dir is not None:
        # The archive is written by the caller, once the file is known to be a video.
        del options["download_archive"]
        options["outtmpl"] = {"default": str(out_dir / "video.%(ext)s")}
    return options


def _classify(url: str, exc: Exception) -> Exception:
    text = str(exc)
    permanent = ("HTTP Error 4", "Unsupported URL", "is not a valid URL", "Unable to extract",
                 "Video unavailable", "Private video", "Requested format is not available")
    if any(marker in text for marker in permanent):
        return SourceError(f"{url}: {text.removeprefix('ERROR: ')}")
    return TransientError(f"{url}: {text.removeprefix('ERROR: ')}")


def _download_url(url: str, videos_dir: Path, params: DataParams, archive: Path) -> dict[str, Any]:
    try:
        with yt_dlp.YoutubeDL(_ydl_options(params, archive)) as ydl:
            info = ydl.extract_info(url, download=False)
            video_id = safe_id(str(info.get("id") or source_id(url)))
            target = videos_dir / f"{video_id}.mp4"
            if target.exists() and ydl.in_download_archive(info):
                return media_row(video_id, url, target, "skipped")
            # yt-dlp's own working files (parts, streams before merging) stay in a scratch folder.
            with tempfile.TemporaryDirectory(dir=videos_dir, prefix=f".{video_id}.") as tmp:
                with yt_dlp.YoutubeDL(_ydl_options(params, archive, Path(tmp))) as downloader:
                    downloader.process_ie_result(info, download=True)
                files = [p for p in Path(tmp).iterdir() if p.is_file() and not p.name.endswith(".part")]
                if not files:
                    raise SourceError(f"{url}: yt-dlp finished without writing a file")
                row = media_row(video_id, url, files[0], "ok")
                with atomic_path(target) as temp:
                    files[0].rename(temp)
            ydl.record_download_archive(info)
            return row
    except yt_dlp.utils.DownloadError as exc:
        raise _classify(url, exc) from None
    except DecodeError as exc:
        reason = str(exc).rsplit(": ", 1)[-1].rstrip(")")
        raise SourceError(f"{url}: what it serves is not a video ({reason})") from None


def fetch(source: str, videos_dir: Path, params: DataParams, archive: Path) -> dict[str, Any]:
    """Fetch one source into videos_dir/<video_id>.mp4 and return its manifest row.

    Raises SourceError (permanent) or TransientError (worth a retry).
    """
    videos_dir.mkdir(parents=True, exist_ok=True)
    if check_source(source) == "url":
        return _download_url(source, videos_dir, params, archive)
    video_id = source_id(source)
    target = videos_dir / f"{video_id}.mp4"
    src = Path(source).expanduser()
    if target.exists() and src.is_file() and sha256_file(src) == sha256_file(target):
        return media_row(video_id, source, target, "skipped")
    _copy_local(source, target)
    return media_row(video_id, source, target, "ok")


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The manifest at `path` (Paths.manifest): one row per source, replaced atomically."""
    return write_status_table(rows, path, MANIFEST_SCHEMA)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of the manifest at `path`; none before the first ingest."""
    return read_status_table(path, MANIFEST_SCHEMA)
