"""Decoding with ffmpeg-python: probe a file, stream its frames at a fixed fps, read its audio.

Frames are resampled by ffmpeg's `fps` filter, which picks frames by timestamp, so a 25 or
29.97 fps source comes out at the pipeline's fps with frame i showing time i / fps.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np


class DecodeError(RuntimeError):
    """A media file could not be read; the message names the file and the problem."""


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float
    has_video: bool
    has_audio: bool
    fps: float = 0.0
    width: int = 0
    height: int = 0
    sample_rate: int = 0


def _ratio(text: str | None) -> float:
    num, _, den = (text or "0/1").partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def probe(path: str | Path) -> MediaInfo:
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"{path}: no such file")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise DecodeError(f"{path}: not a readable media file ({message[-1] if message else 'ffprobe failed'})") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise DecodeError(f"{path}: not a media file (no audio or video stream)")
    duration = float(info.get("format", {}).get("duration") or (video or audio or {}).get("duration") or 0.0)
    return MediaInfo(
        path=str(path),
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        fps=_ratio(video.get("avg_frame_rate") or video.get("r_frame_rate")) if video else 0.0,
        width=int(video.get("width", 0)) if video else 0,
        height=int(video.get("height", 0)) if video else 0,
        sample_rate=int(audio.get("sample_rate", 0)) if audio else 0,
    )


def iter_frames(path: str | Path, fps: float, width: int = 0, height: int = 0) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) at `fps`, streamed from one ffmpeg process.

    Memory holds one frame at a time. Raises DecodeError if ffmpeg fails before the end,
    after yielding what it decoded (a truncated file yields its readable frames, then fails).
    """
    info = probe(path)
    if not info.has_video:
        raise DecodeError(f"{path}: has no video stream")
    width, height = width or info.width, height or info.height
    stream = ffmpeg.input(str(path)).video.filter("fps", fps=fps)
    if (width, height) != (info.width, info.height):
        stream = stream.filter("scale", width, height)
    process = (
        stream.output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-loglevel", "error", "-xerror")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    frame_bytes = width * height * 3
    try:
        while True:
            buffer = process.stdout.read(frame_bytes)
            if len(buffer) < frame_bytes:
                break
            yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
    finally:
        process.stdout.close()
        stderr = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
        code = process.wait()
    if code != 0:
        raise DecodeError(f"{path}: video decoding failed: {stderr.splitlines()[-1] if stderr else f'ffmpeg exit {code}'}")


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The whole audio track as float32 mono at `sample_rate` (16 kHz mono is 64 kB per second)."""
    info = probe(path)
    if not info.has_audio:
        raise DecodeError(f"{path}: has no audio stream")
    try:
        out, _ = (
            ffmpeg.input(str(path))
            .audio.output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate)
            .global_args("-nostdin", "-loglevel", "error", "-xerror")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise DecodeError(f"{path}: audio decoding failed: {message[-1] if message else 'ffmpeg failed'}") from None
    return np.frombuffer(out, np.float32).copy()


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]
