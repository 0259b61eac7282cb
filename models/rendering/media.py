"""The encoding end of rendering: raw RGB frames into an H.264 + AAC mp4, written atomically (audio is
read by tasks.rows.decode.iter_audio). The command is built with ffmpeg-python, as decoding's is, and run
as an argument list, never a shell; stderr goes to a temporary file, because a pipe nobody reads
can fill up and stall ffmpeg."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Self

import cv2
import ffmpeg
import numpy as np

from models.errors import RenderError
from tasks.config.files import atomic_path
from tasks.config.params import RenderParams
from tasks.provenance.manifest import sign_mp4


def _last_line(log: IO[bytes], code: int | None) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"ffmpeg exit {code}"


class Encoder:
    """ffmpeg reading `size` = (width, height) uint8 RGB frames from `write`, muxing the first
    `seconds` of the audio of `audio`, scaling to `scale` squared (lanczos) when given; an odd side
    loses its last pixel (H.264 in yuv420p needs even sides). `out` is written atomically
    (tasks.config.files.atomic_path): ffmpeg writes a temporary .mp4 beside it, which `finish(temp, out)`,
    when given, completes in place (the signer signs it for `out`'s name); it becomes `out` only when
    the block ends without an exception and ffmpeg succeeds, and is removed otherwise."""

    def __init__(
        self,
        out: Path,
        audio: Path,
        seconds: float,
        size: tuple[int, int],
        fps: float,
        params: RenderParams,
        *,
        scale: int | None = None,
        finish: Callable[[Path, Path], None] | None = None,
    ):
        self.out, self.audio, self.seconds, self.fps, self.params = Path(out), audio, seconds, fps, params
        self.scale, self.finish = scale, finish
        self.width, self.height = size[0] - size[0] % 2, size[1] - size[1] % 2

    def command(self, temp: Path) -> list[str]:
        """ffmpeg's arguments: raw I420 frames of an even `width` x `height` on stdin and the audio of
        `audio` -> H.264 + AAC mp4 at `temp`, scaled to `scale` squared (lanczos) when given."""
        video = ffmpeg.input(
            "pipe:0",
            format="rawvideo",
            pix_fmt="yuv420p",
            s=f"{self.width}x{self.height}",
            framerate=self.fps,
        ).video
        if self.scale:
            video = video.filter("scale", self.scale, self.scale, flags="lanczos")
        # -t: exactly the audio that was decoded into frames; an AAC source's last frame of padding would
        # otherwise come along and outlast the video.
        sound = ffmpeg.input(str(self.audio), t=f"{self.seconds:.6f}").audio
        output = ffmpeg.output(
            video,
            sound,
            str(temp),
            vcodec="libx264",
            preset=self.params.preset,
            crf=self.params.crf,
            pix_fmt="yuv420p",
            acodec="aac",
            audio_bitrate=f"{self.params.audio_kbps}k",
            movflags="+faststart",
            format="mp4",
        )
        return output.global_args("-nostdin", "-loglevel", "error").overwrite_output().compile()

    @contextlib.contextmanager
    def _running(self) -> Iterator[Self]:
        with atomic_path(self.out) as temp, tempfile.TemporaryFile() as self.log:
            self.process = subprocess.Popen(
                self.command(temp), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log
            )
            try:
                yield self
            except BaseException:
                self.process.kill()
                raise
            finally:
                with contextlib.suppress(BrokenPipeError):
                    self.process.stdin.close()
                code = self.process.wait()
            if code != 0:
                raise RenderError(f"{self.out}: encoding failed: {_last_line(self.log, code)}")
            if self.finish is not None:
                self.finish(temp, self.out)

    def __enter__(self) -> Self:
        self._context = self._running()
        return self._context.__enter__()

    def __exit__(self, *exc_info) -> bool | None:
        return self._context.__exit__(*exc_info)

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


class Signer:
    """The encoder's `finish`: signs its finished temporary file in place, for the name it will have (the
    manifest's title is the file's name), before the encoder renames it to `out`
    (tasks/provenance/manifest.py): the render's `facts`, the output's digital source type and the
    watermark's id as the soft binding. What sign_mp4 returned is kept in `signed`."""

    def __init__(self, facts: dict, key_dir: str | None, source_type: str, mark_id: int | None):
        self.facts, self.key_dir, self.source_type, self.mark_id = facts, key_dir, source_type, mark_id
        self.signed: dict = {}

    def __call__(self, temp: Path, final: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".signing-", dir=temp.parent) as folder:
            signed = Path(folder) / final.name
            made = sign_mp4(temp, signed, self.facts, self.key_dir, self.source_type, self.mark_id)
            self.signed.update(made)
            os.replace(signed, temp)
