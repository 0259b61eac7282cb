"""The encoding end of rendering: raw RGB frames into an H.264 + AAC mp4, written atomically (audio is
read by tasks.decode.iter_audio). The command is built with ffmpeg-python, as decoding's is, and run
as an argument list, never a shell; stderr goes to a temporary file, because a pipe nobody reads
can fill up and stall ffmpeg."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

import cv2
import ffmpeg
import numpy as np

from models.errors import RenderError
from tasks.params import RenderParams


def _last_line(log: IO[bytes], code: int | None) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"ffmpeg exit {code}"


class Encoder:
    """ffmpeg reading (n, height, width, 3) uint8 frames from `write`, muxing the first `seconds` of
    the audio of `audio`, scaling to `size` squared (lanczos) when given; an odd side loses its last
    pixel (H.264 in yuv420p needs even sides). `out` appears only when the block ends without an
    exception and ffmpeg succeeds, after `finish(temp, out)` (default: a rename) when given; a
    temporary name beside it until then."""

    def __init__(
        self,
        out: Path,
        audio: Path,
        seconds: float,
        width: int,
        height: int,
        fps: float,
        size: int | None,
        params: RenderParams,
        finish: Callable[[Path, Path], None] | None = None,
    ):
        self.out, self.finish = out, finish
        self.temp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.mp4"
        self.width, self.height = width - width % 2, height - height % 2
        self.command = self._command(audio, seconds, fps, size, params)

    def _command(
        self, audio: Path, seconds: float, fps: float, size: int | None, params: RenderParams
    ) -> list[str]:
        """ffmpeg's arguments: raw I420 frames of an even `width` x `height` on stdin and the audio of
        `audio` -> H.264 + AAC mp4 at `temp`, scaled to `size` squared (lanczos) when given."""
        video = ffmpeg.input(
            "pipe:0", format="rawvideo", pix_fmt="yuv420p", s=f"{self.width}x{self.height}", framerate=fps
        ).video
        if size:
            video = video.filter("scale", size, size, flags="lanczos")
        # -t: exactly the audio that was decoded into frames; an AAC source's last frame of padding would
        # otherwise come along and outlast the video.
        sound = ffmpeg.input(str(audio), t=f"{seconds:.6f}").audio
        output = ffmpeg.output(
            video,
            sound,
            str(self.temp),
            vcodec="libx264",
            preset=params.preset,
            crf=params.crf,
            pix_fmt="yuv420p",
            acodec="aac",
            audio_bitrate=f"{params.audio_kbps}k",
            movflags="+faststart",
            format="mp4",
        )
        return output.global_args("-nostdin", "-loglevel", "error").overwrite_output().compile()

    def __enter__(self) -> Self:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log
        )
        return self

    def write(self, frames: np.ndarray) -> None:
        """One (H, W, 3) RGB frame or a batch (n, H, W, 3). They go to ffmpeg as I420, converted here:
        OpenCV's conversion costs less than ffmpeg's, and the pipe carries half the bytes."""
        frames = np.asarray(frames, np.uint8)
        try:
            for frame in frames if frames.ndim == 4 else frames[None]:
                i420 = cv2.cvtColor(frame[: self.height, : self.width], cv2.COLOR_RGB2YUV_I420)
                self.process.stdin.write(memoryview(i420).cast("B"))
        except BrokenPipeError:
            raise RenderError(
                f"{self.out}: encoding failed: {_last_line(self.log, self.process.wait())}"
            ) from None

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is not None:
                self.process.kill()
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
            code = self.process.wait()
            if exc_type is None:
                if code != 0:
                    raise RenderError(f"{self.out}: encoding failed: {_last_line(self.log, code)}")
                if self.finish is None:
                    os.replace(self.temp, self.out)
                else:
                    self.finish(self.temp, self.out)
        finally:
            self.log.close()
            self.temp.unlink(missing_ok=True)
