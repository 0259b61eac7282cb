"""The Live view (ARCHITECTURE.md, Live): the browser's microphone in, the target speaking out, in the app's
Live tab (`reenact app`) or alone (`reenact live --target NAME`).

Transport: a WebSocket of the app's own (`LIVE_PATH`, served by Gradio's FastAPI app, so the app's guard
stands before it: without a login the socket is closed, flows/app_guard.py). The page (flows/live.js) sends
the microphone's speech in 20 ms chunks of float32 at preprocess.sample_rate; each chunk is pushed into a
LiveStream (models/rendering/stream.py) on a worker thread, and what it paints goes back as JPEG with the
frame's time in the speech and its mouth opening, after the speech itself, so that the page can play both in
step. Why not WebRTC: fastrtc requires gradio < 6 (this project runs 6.31), and Gradio's own streaming sends
an image per event or video in chunks of a second or more; a socket of JPEG frames holds the latency.

One stream at a time: the CPU paints for one. Frames are made as fast as the CPU allows and dropped by the
stream when it falls behind, so nothing queues on the server beyond the speech not yet pushed.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
import gradio as gr
import numpy as np
import simplejpeg
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from models.errors import CheckpointError, RenderError
from models.rendering.stream import LiveFrame, LiveStream
from models.rendering.target import TargetFrames, target_video_file
from tasks.config.params import Params
from tasks.rows.landmarks import lips_opening

LIVE_PATH = "/live/socket"
FRAME, AUDIO = 1, 2  # the first byte of a binary message to the page
MAX_CHUNK_SECONDS = 1.0  # a chunk of speech longer than this is refused (the page sends 20 ms)
CLIENT = (Path(__file__).with_name("live.js")).read_text()


def frame_message(frame: LiveFrame, opening: float, quality: int) -> bytes:
    """FRAME, the frame's time (float64), its mouth opening (float32), then the JPEG."""
    jpeg = simplejpeg.encode_jpeg(np.ascontiguousarray(frame.image), quality)
    return struct.pack("<Bdf", FRAME, frame.time, opening) + jpeg


def audio_message(time: float, samples: np.ndarray) -> bytes:
    """AUDIO, the time of the first sample (float64), then the samples (float32)."""
    return struct.pack("<Bd", AUDIO, time) + np.asarray(samples, "<f4").tobytes()


def speech_chunk(data: bytes | None, rate: int) -> np.ndarray:
    """The float32 samples a message holds, or RenderError saying what is wrong with it."""
    if not data or len(data) % 4:
        raise RenderError(f"a speech message of {len(data or b'')} bytes: not float32 samples")
    if len(data) > MAX_CHUNK_SECONDS * rate * 4:
        raise RenderError(f"a speech message of {len(data) // 4} samples: more than {MAX_CHUNK_SECONDS:g} s")
    samples = np.frombuffer(data, "<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise RenderError("a speech message holds NaN or infinite samples")
    return samples


class Live:
    """The live streams of one app: targets resolved by `targets(name)` (flows/app.py: Targets), one
    stream at a time."""

    def __init__(self, targets: Any, params: Params, default: str):
        self.targets, self.params, self.default = targets, params, default
        self.busy = threading.Lock()

    def check(self, name: str) -> str:
        """The name of target `name` once its rows and footage are there to stream onto, else RenderError
        (`reenact live` says so before it serves)."""
        target = self.targets(name)
        rows = target.needs_rows("a live stream")
        footage = target_video_file(target.paths.videos, target.name)
        TargetFrames(footage, self.params.preprocess.fps, len(rows))  # probes: RenderError without a picture
        return target.name

    def route(self) -> WebSocketRoute:
        return WebSocketRoute(LIVE_PATH, self.serve)

    async def serve(self, socket: WebSocket) -> None:
        await socket.accept()
        if not self.busy.acquire(blocking=False):
            await self._refuse(socket, "Another live stream is running; try again when it ends.")
            return
        try:
            name = socket.query_params.get("target") or self.default
            try:
                stream = await anyio.to_thread.run_sync(self._open, name)
            except (RenderError, CheckpointError, FileNotFoundError) as exc:
                await self._refuse(socket, f"Cannot go live: {exc}")
                return
            footage = stream.footage
            await socket.send_text(json.dumps({
                "type": "ready", "target": name, "rate": stream.rate, "fps": stream.fps,
                "width": footage.width, "height": footage.height, "mark": f"{stream.mark_id:08x}"}))
            await self._run(socket, stream)
        except WebSocketDisconnect:
            pass
        finally:
            self.busy.release()

    def _open(self, name: str) -> LiveStream:
        stream = LiveStream(self.targets(name), self.params)
        stream.warm_up()
        return stream

    async def _refuse(self, socket: WebSocket, text: str) -> None:
        await socket.send_text(json.dumps({"type": "error", "text": text}))
        await socket.close(1000)

    async def _run(self, socket: WebSocket, stream: LiveStream) -> None:
        """Speech in on one task, frames out on another; the painting on a worker thread."""
        pending: asyncio.Queue = asyncio.Queue()

        async def receive() -> None:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    pending.put_nowait(speech_chunk(message.get("bytes"), stream.rate))
                except RenderError as exc:
                    await self._refuse(socket, f"Stopped: {exc}")
                    break
            pending.put_nowait(None)

        receiving = asyncio.create_task(receive())
        try:
            await self._paint(socket, stream, pending)
        finally:
            receiving.cancel()

    async def _paint(self, socket: WebSocket, stream: LiveStream, pending: asyncio.Queue) -> None:
        indices, quality = stream.models.cgan_artifact.lip_indices, self.params.live.jpeg_quality

        def push(samples: np.ndarray) -> list[bytes]:
            frames = stream.push(samples)
            openings = lips_opening(np.stack([f.lips for f in frames]), indices) if frames else []
            return [frame_message(f, float(o), quality) for f, o in zip(frames, openings)]

        while True:
            got = [await pending.get()]
            while not pending.empty():
                got.append(pending.get_nowait())
            pieces = [piece for piece in got if piece is not None]
            if pieces:
                samples = np.concatenate(pieces)
                await socket.send_bytes(audio_message(stream.heard / stream.rate, samples))
                for message in await anyio.to_thread.run_sync(push, samples):
                    await socket.send_bytes(message)
                await socket.send_text(json.dumps({"type": "stats", "dropped": stream.dropped,
                                                   "painted": stream.painted}))
            if len(pieces) < len(got):
                return


def live_tab(live: Live, choices: list[tuple[str, str]], default: str) -> None:
    """The Live tab's parts: the target, Start and Stop, the picture and a line of what is happening."""
    gr.Markdown("Speak into the microphone: the target speaks with you, live. Every frame carries the "
                "invisible watermark of a render.")
    with gr.Row():
        target = gr.Dropdown(choices, value=default, label="Target", elem_id="live-target")
        voice = gr.Checkbox(False, label="Play the voice with the video (use headphones)",
                            elem_id="live-voice")
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="live-start")
        stop = gr.Button("Stop", elem_id="live-stop")
    gr.HTML('<canvas id="live-canvas" width="512" height="512" style="max-width:100%"></canvas>'
            '<p id="live-status">Press Start and allow the microphone.</p>', js_on_load=CLIENT,
            elem_id="live-view")
    start.click(None, [target], None, js="(target) => window.reenactLive.start(target)")
    stop.click(None, None, None, js="() => window.reenactLive.stop('Stopped.')")
    del voice  # read by the page (#live-voice), not by the server
