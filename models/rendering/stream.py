"""Live rendering (ARCHITECTURE.md, Live): speech arriving in chunks of any size -> the target's composited,
watermarked frames at its footage's fps, each with its time in the speech, as soon as the lookahead allows.

A file render (models/rendering/render.py) sees the whole clip; a stream sees what has been said. Per step:

1. speech -> raw lips: `speech_lips` over a sliding window of the speech heard (`live.window_ms` before the
   first new frame, started on a frame boundary so that frame times are the file render's), up to the last
   sample heard. The BiLSTM hears the future, so frame i is made once `live.lookahead_ms` of speech past
   i / fps has arrived; with less than its window's worth, its future is the window's end repeated. Whisper's
   windowed states (`preprocess.whisper: window`) are encoded as each window ends; a frame whose window has
   not ended yet reads the last one that has (a file render reads windows ending up to 0.4 s after it).
2. raw -> final lips: `final_lips` over that window (aligned, smoothed, bounded, the silence gate), the
   statistics being the voice's so far (its voiced frames, after `live.warmup_seconds` of them; before, the
   LSTM's usual ones) and the loud level the last `live.level_seconds`' (a file render takes both from the
   whole clip).
3. lips -> faces -> frames: the generator paints each frame into target frame `pingpong(i, N)`, composited
   and marked as a render does (models/rendering/layouts.py: `composite_marked`), labelled when
   provenance.label says so. The footage is decoded once, kept in memory (as JPEG past `live.footage_mb`).

Falling behind: a step paints at most `live.max_batch` frames, the newest; older frames waiting are
dropped, so the mouth stays in time with the voice and nothing queues without bound. A step runs torch on
`live.threads` threads (1: on two cores shared with other work, two threads wait on each other).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import simplejpeg
import torch

from models.errors import RenderError
from models.networks.cgan import generate_faces
from models.rendering.layouts import composite_marked, painter
from models.rendering.loading import Target
from models.rendering.mark import Marker
from models.rendering.speech import frame_count, heard_params, speech_lips
from models.rendering.target import TargetFrames, pingpong, target_video_file
from models.training.lips import (
    GATE_WINDOW,
    MomentSums,
    Silence,
    final_lips,
    pooled_stats,
    silence_threshold,
    source_stats,
)
from tasks.config.params import Params
from tasks.provenance.manifest import draw_label
from tasks.provenance.watermark import new_mark_id
from tasks.rows.features import LOG_ENERGY, audio_features, phone_kinds
from tasks.rows.phones import PhoneStream
from tasks.rows.whisper import WhisperWindows


@dataclass(frozen=True)
class LiveFrame:
    """Output frame `index` of a stream: it shows the speech at `time` = index / fps seconds from the
    stream's start, `image` (H, W, 3) uint8 RGB, painted from the final `lips` (LIPS_DIM,) once `heard`
    samples of speech had arrived."""

    index: int
    time: float
    image: np.ndarray
    lips: np.ndarray
    heard: int


# A window starts on a frame boundary that falls on a whole sample when one comes within this many frames.
MAX_STEP = 30


def frame_step(fps: float, sample_rate: int) -> int:
    """The fewest frames between two frame boundaries that fall on a whole sample: 3 at 30 fps and 16 kHz
    (1,600 samples), 1 at 25 fps; 1 when there is none within MAX_STEP frames (29.97 fps): a window then
    starts on the sample nearest its first frame's time, at most half a sample (31 us at 16 kHz) off."""
    ratio = Fraction(sample_rate) / Fraction(fps).limit_denominator(1001)
    exact = abs(float(ratio) - sample_rate / fps) <= 1e-9 * sample_rate
    return ratio.denominator if exact and ratio.denominator <= MAX_STEP else 1


class Footage:
    """The target's frames in memory, by index: as they are, or as JPEG past `limit_mb`."""

    def __init__(self, target: Target, params: Params):
        rows = target.needs_rows("a live stream")
        frames = TargetFrames(target_video_file(target.paths.videos, target.name), params.preprocess.fps,
                              len(rows))
        self.width, self.height, self.count = frames.width, frames.height, len(rows)
        self.jpeg = frames.width * frames.height * 3 * len(rows) > params.live.footage_mb * 2**20
        self.frames = [simplejpeg.encode_jpeg(np.ascontiguousarray(frame), 95) if self.jpeg else frame
                       for _, frame in frames(len(rows))]

    def __getitem__(self, index: int) -> np.ndarray:
        frame = self.frames[index]
        return simplejpeg.decode_jpeg(frame) if self.jpeg else frame


class LiveStream:
    """Speech in (`push`, then `flush` at its end), frames out (models/rendering/stream.py's docstring).
    `mark_id`: the watermark's 32-bit id (None: a fresh one); `watermark` False only to measure its cost."""

    def __init__(self, target: Target, params: Params, mark_id: int | None = None, watermark: bool = True):
        p, live = params.preprocess, params.live
        self.target, self.params, self.models = target, params, target.models
        self.fps, self.rate = p.fps, p.sample_rate
        if abs(self.models.lstm_artifact.fps - self.fps) > 1e-6:
            raise RenderError(f"the LSTM was trained at {self.models.lstm_artifact.fps} fps; "
                              f"preprocess.fps: {self.fps}")
        self.rows = target.needs_rows("a live stream")
        self.paint = painter(self.models, self.rows)
        self.footage = Footage(target, params)
        self.mark_id = (new_mark_id() if mark_id is None else mark_id) if watermark else None
        self.marker = Marker(self.mark_id, self.fps) if self.mark_id is not None else None
        self.label = params.provenance.label_text if params.provenance.label else None
        self.lookahead = round(live.lookahead_ms / 1000 * self.rate)
        self.back = math.ceil(live.window_ms / 1000 * self.fps)
        self.step = frame_step(self.fps, self.rate)
        self.corpus = pooled_stats(self.models.cgan_artifact.lips_stats)
        self.voiced = MomentSums(self.rows.lips.shape[1])
        self.warmup = round(live.warmup_seconds * self.fps)
        self.levels: deque[float] = deque(maxlen=max(1, round(live.level_seconds * self.fps)))
        # the silence gate's loudness (the log energy) needs no phone features (tasks/rows/features.py)
        quiet = {"phones": False, "words": False, "whisper": False}
        self.loud_params = p.model_copy(update=quiet) if hasattr(p, "phones") else p
        # an LSTM that hears phones: decoded once, as the speech arrives (a file's are decoded in blocks).
        # Words need the utterance's end: live, the phone loop's phones stand in for the words' (the
        # cost on voices never heard: ARCHITECTURE.md, Live)
        heard = heard_params(self.models, p)
        if heard.whisper is True:  # Whisper's 30-s blocks (tasks/rows/whisper.py): a stream would wait
            raise RenderError(f"{self.models.lstm_path}: the LSTM hears Whisper's states of 30-s blocks: "
                              "live needs an LSTM trained with preprocess.whisper window or false")
        self.kinds = len(phone_kinds(heard))
        self.phones = PhoneStream(self.rate) if self.kinds else None
        # Whisper's windows, encoded as they end; a frame whose window has not ended reads the last one's
        self.states = WhisperWindows(self.rate) if heard.whisper == "window" else None
        self.samples, self.offset = np.zeros(0, np.float32), 0  # the speech kept, from sample `offset`
        self.next, self.dropped, self.painted = 0, 0, 0

    def warm_up(self) -> None:
        """A window of silence heard and a frame painted, both thrown away: torch and the features set
        themselves up on their first call, so that the stream's first frames come as fast as the rest."""
        silence = np.zeros(self._sample(self.back) + self.lookahead, np.float32)
        with self._threads():
            speech_lips(self.models, silence, self.rate, self.fps, self.params.preprocess)
            self._paint(0, np.asarray(self.target.closed, np.float32)[None])

    @property
    def heard(self) -> int:
        """Samples of speech pushed so far."""
        return self.offset + len(self.samples)

    def ready(self, final: bool = False) -> int:
        """Frames whose speech and lookahead have arrived (all frames the speech covers, `final`)."""
        # frame i's time must be heard (i / fps before the last sample's), and the lookahead past it
        return frame_count(max(0, self.heard - (0 if final else self.lookahead)), self.rate, self.fps)

    def push(self, chunk: np.ndarray) -> list[LiveFrame]:
        """Add a chunk of speech (mono float32 at preprocess.sample_rate, any length); the frames it made
        ready, painted, oldest first (at most live.max_batch: the older ones waiting are dropped)."""
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        if not np.isfinite(chunk).all():
            raise RenderError(f"a speech chunk of {len(chunk)} samples holds NaN or infinite values")
        self.samples = np.concatenate([self.samples, chunk])
        for decoder in (self.phones, self.states):
            if decoder is not None:
                decoder.add(chunk)
        return self._frames(self.ready())

    def flush(self) -> list[LiveFrame]:
        """The speech has ended: every frame it covers that is still to come (the last ones without any
        lookahead, as at the end of a file render), none dropped."""
        frames = []
        while self.next < self.ready(final=True):
            frames += self._frames(min(self.ready(final=True), self.next + self.params.live.max_batch))
        return frames

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """torch on live.threads threads while a step paints, then as it was (OpenMP's count is the calling
        thread's own: a render on another thread keeps its)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.params.live.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _frames(self, end: int) -> list[LiveFrame]:
        if end <= self.next:
            return []
        with self._threads():
            return self._step(end)

    def _step(self, end: int) -> list[LiveFrame]:
        start = max(self.next, end - self.params.live.max_batch)
        self.dropped += start - self.next
        lips = self._lips(start, end)
        images = self._paint(start, lips)
        self.next, self.painted = end, self.painted + len(images)
        self._forget()
        return [LiveFrame(start + k, (start + k) / self.fps, image, lips[k], self.heard)
                for k, image in enumerate(images)]

    def _lips(self, start: int, end: int) -> np.ndarray:
        """(end - start, LIPS_DIM) final lips of frames start..end-1 (models/training/lips.py: final_lips)."""
        first = max(0, (start - self.back) // self.step * self.step)
        window = self.samples[self._sample(first) - self.offset:]
        shares = None
        if self.phones is not None:
            shares = self.phones.features((first + np.arange(frame_count(len(window), self.rate, self.fps)))
                                          / self.fps)
            shares = np.concatenate([shares] * self.kinds, 1)
        states = None
        if self.states is not None:
            frames = first + np.arange(frame_count(len(window), self.rate, self.fps))
            states = self.states.features(frames / self.fps, latest=True)
        raw = speech_lips(self.models, window, self.rate, self.fps, self.params.preprocess, shares, states)
        r = self.params.render
        # the frames the smoothing and the gate reach from the new ones, as a file render's chunks take them
        half = max(r.smooth_window, GATE_WINDOW) // 2
        lo, hi = max(0, start - first - half), min(len(raw), end - first + half)
        times = np.arange(lo, hi) / self.fps
        loudness = audio_features(window, self.rate, times, self.loud_params)[:, LOG_ENERGY]
        new = slice(start - first - lo, end - first - lo)
        self.levels.extend(loudness[new].tolist())
        threshold = silence_threshold(np.asarray(self.levels), r.silence_db)
        self.voiced.add(raw[lo:hi][new][loudness[new] >= threshold])
        output = self.models.lstm_artifact.output_stats
        clip = self.voiced.moments() if self.voiced.frames >= max(self.warmup, 2) else (output or self.corpus)
        source, prior = source_stats(r.align, clip, self.corpus, output)
        lips = final_lips(raw[lo:hi], self.params, self.target.stats, source, prior, self.corpus, loudness,
                          Silence(threshold, self.target.closed), self.models.lstm_artifact.shape)
        return lips[new]

    def _paint(self, start: int, lips: np.ndarray) -> list[np.ndarray]:
        """Frames start.. painted from `lips`, composited into their target frames and marked."""
        with torch.inference_mode():
            frames = self.paint(start, lips) if self.paint is not None else None
            faces = generate_faces(self.models.generator, self.models.cgan_artifact, lips,
                                   batch_size=len(lips), frames=frames)
        out = []
        for k, face in enumerate(faces):
            index = int(pingpong(start + k, len(self.rows)))
            frame = composite_marked(self.footage[index], face, self.rows, index, start + k, self.marker)
            out.append(draw_label(frame, self.label) if self.label else frame)
        return out

    def _sample(self, frame: int) -> int:
        return round(frame * self.rate / self.fps)

    def _forget(self) -> None:
        """Drop the speech no later window needs (the next one starts `back` frames before `next`)."""
        keep = self._sample(max(0, (self.next - self.back) // self.step * self.step))
        if keep > self.offset:
            self.samples, self.offset = self.samples[keep - self.offset:], keep
            if self.phones is not None:
                self.phones.forget(keep / self.rate - 0.1)  # a frame's phones reach PHONE_WINDOW_S back
            if self.states is not None:
                self.states.forget(keep / self.rate)
