"""Decoding with ffmpeg-python: probe a file, stream its frames at a fixed fps, read its audio.

Frames are resampled by ffmpeg's `fps` filter, which picks frames by timestamp, so a 25 or
29.97 fps source comes out at the pipeline's fps with frame i showing time i / fps.
"""

from __future__ import annotations

import math
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
    sample_aspect: float = 1.0  # width / height of a pixel as displayed (anamorphic video: not 1)

    def square_pixel_size(self) -> tuple[int, int]:
        """(width, height) at which the frames look as displayed, with square pixels: the width
        scaled by the sample aspect ratio, both sides even for I420 (a rescaled frame might as
        well be). Faces in anamorphic video decoded at the stored size are squashed: HOG misses them."""
        if abs(self.sample_aspect - 1.0) < 0.01:
            return self.width, self.height
        return max(2, 2 * round(self.width * self.sample_aspect / 2)), max(2, 2 * round(self.height / 2))


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
        reason = message[-1] if message else "ffprobe failed"
        raise DecodeError(f"{path}: not a readable media file ({reason})") from None
    streams = info.get("streams", [])
    # A cover picture is a video stream too; it is not the video.
    moving = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    video = next(iter(moving), None)
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
        sample_aspect=_ratio((video or {}).get("sample_aspect_ratio", "").replace(":", "/")) or 1.0,
    )


def _close(process) -> str:
    """Close a reading ffmpeg's pipes and wait for it: "" when it succeeded, else its last error line."""
    process.stdout.close()
    stderr = process.stderr.read().decode(errors="replace").strip()
    process.stderr.close()
    code = process.wait()
    if code == 0:
        return ""
    return stderr.splitlines()[-1] if stderr else f"ffmpeg exit {code}"


def iter_frames(
    path: str | Path,
    fps: float,
    width: int = 0,
    height: int = 0,
    pix_fmt: str = "rgb24",
    info: MediaInfo | None = None,
    start: int = 0,
) -> Iterator[np.ndarray]:
    """Frames at `fps`, streamed from one ffmpeg process: RGB uint8 (H, W, 3) for pix_fmt "rgb24",
    I420 uint8 (H * 3 // 2, W) for "yuv420p" (OpenCV's layout for COLOR_YUV2RGB_I420: the Y
    plane is the first H rows, then U and V at half resolution; H and W must be even).

    I420 is what most videos hold, so ffmpeg hands it over without a colour conversion and
    the pipe carries half the bytes of RGB. Pass `info` (from probe) to save an ffprobe run.
    `start`: the first frame to yield (frame `start` of a run from 0), reached by seeking.
    Memory holds one frame at a time. Raises DecodeError if ffmpeg fails before the end,
    after yielding what it decoded (a truncated file yields its readable frames, then fails).
    """
    if pix_fmt not in ("rgb24", "yuv420p"):
        raise ValueError(f"pix_fmt must be rgb24 or yuv420p, got {pix_fmt!r}")
    info = info or probe(path)
    if not info.has_video:
        raise DecodeError(f"{path}: has no video stream")
    width, height = width or info.width, height or info.height
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ValueError(f"{path}: yuv420p frames need an even width and height, got {width}x{height}")
    # Seeking lands on frame `start` when it is aimed a third of a frame early: the decoder drops
    # what lies before the seek point, and the fps filter's grid restarts at the first frame kept.
    seek = {"ss": f"{max(0.0, (start - 1 / 3) / fps):.6f}"} if start else {}
    stream = ffmpeg.input(str(path), **seek).video.filter("fps", fps=fps)
    if (width, height) != (info.width, info.height):
        stream = stream.filter("scale", width, height)
    process = (
        stream.output("pipe:", format="rawvideo", pix_fmt=pix_fmt)
        .global_args("-nostdin", "-loglevel", "error", "-xerror")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    shape = (height, width, 3) if pix_fmt == "rgb24" else (height * 3 // 2, width)
    frame_bytes = math.prod(shape)
    try:
        while True:
            buffer = process.stdout.read(frame_bytes)
            if len(buffer) < frame_bytes:
                break
            yield np.frombuffer(buffer, np.uint8).reshape(shape)
    finally:
        failure = _close(process)
    if failure:
        raise DecodeError(f"{path}: video decoding failed: {failure}")


def read_audio(path: str | Path, sample_rate: int = 16000, info: MediaInfo | None = None) -> np.ndarray:
    """The whole audio track as float32 mono at `sample_rate` (16 kHz mono is 64 kB per second).

    Pass `info` (from probe) to save an ffprobe run: each costs ~70 ms, a tenth of a short clip's work.
    """
    blocks = list(iter_audio(path, sample_rate, 1 << 20, info))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def iter_audio(
    path: str | Path, sample_rate: int, block: int, info: MediaInfo | None = None
) -> Iterator[np.ndarray]:
    """The first audio stream as float32 mono blocks of `block` samples (the last may be shorter),
    streamed from one ffmpeg process: `read_audio` in constant memory, for hour-long speech."""
    info = info or probe(path)
    if not info.has_audio:
        raise DecodeError(f"{path}: has no audio stream")
    process = (
        ffmpeg.input(str(path))
        .audio.output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate)
        .global_args("-nostdin", "-loglevel", "error")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    # stderr is read only at the end: ffmpeg's -loglevel error keeps it far below a pipe's buffer.
    try:
        while data := process.stdout.read(4 * block):
            yield np.frombuffer(data[: len(data) // 4 * 4], np.float32)
    finally:
        failure = _close(process)
    if failure:
        raise DecodeError(f"{path}: audio decoding failed: {failure}")


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]
