"""Speech -> a talking-head mp4 (ARCHITECTURE.md, Rendering). The DVC stage `render`:

    python -m models.rendering.render [--root .] [--params params.yaml] [--override KEY=VALUE]
                            [--shards ...] [--videos ...] [--lstm ...] [--cgan ...]

writes paths.renders / demo.mp4 (a held-out video's speech on the target's own full frames) and
paths.renders / demo_panel.mp4 (the target frame beside the composite, with the lip traces).
`reenact render --audio speech.wav --out talk.mp4` is the same `render()` for any audio ffmpeg reads.

The steps, each in its own module: speech -> raw lips (models/rendering/speech.py, streamed), raw -> final
lips (models/training/lips.py: aligned to the target, smoothed, bounded to what the generator saw), final
lips -> faces (models/networks/cgan.py), faces -> the target's frames (models/rendering/target.py,
models/rendering/composite.py),
frames -> mp4 (models/rendering/media.py). Memory stays flat however long the speech: audio arrives through an
ffmpeg pipe, lips wait on disk (64 bytes a frame), frames stream into ffmpeg's stdin.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import RenderError
from models.records import LipsStats, Shape
from models.rendering.layouts import FrameStream, Layout, check_output
from models.rendering.loading import Models, Target, load_models, models_stage, resolve_target
from models.rendering.mark import Marker
from models.rendering.media import Encoder, Signer
from models.rendering.panel import real_video
from models.rendering.speech import frame_count, stream_lips
from models.training.lips import (
    GATE_WINDOW,
    MomentSums,
    Silence,
    final_lips,
    pooled_stats,
    silence_threshold,
    source_stats,
    speaker_lips,
    voiced_moments,
)
from tasks.config.entry import run
from tasks.config.params import Output, Params, digest
from tasks.config.paths import Paths
from tasks.config.progress import Progress as Shown
from tasks.provenance.manifest import Verdict, draw_label, render_facts, source_type_of
from tasks.provenance.watermark import new_mark_id
from tasks.rows.decode import DecodeError, MediaInfo, iter_audio, probe
from tasks.rows.features import LOG_ENERGY
from tasks.table.shards import partition_dir

Progress = Callable[[str, int, int], None]

__all__ = [
    "Models",
    "RenderError",
    "RenderOptions",
    "RenderResult",
    "Target",
    "clip_lips",
    "load_models",
    "render",
    "resolve_target",
]


@dataclass(frozen=True)
class RenderOptions:
    """What one render may choose besides the speech, the models, the params and the project's files.

    output: one of OUTPUTS (tasks/config/params.py; None: render.output). real: the corpus video the speech
    comes from, for the traces' real mouth opening (None: found by the speech file's path in `paths.videos`).
    lips_out: also save the final lips as .npy. provenance: facts added to or overriding the
    manifest's (e.g. "speech_name" for speech downloaded from a URL). progress(phase, done, total):
    phases "lips" then "frames". watermark: every frame carries the invisible mark
    (tasks/provenance/watermark.py); False only to measure what it costs (benchmarks/watermark.py).
    mark_id: the mark's 32-bit id (None: a fresh random one, as every render should have; a fixed one
    makes a render repeatable, e.g. in tests).
    """

    output: Output | None = None
    real: str | None = None
    lips_out: Path | None = None
    provenance: dict | None = None
    progress: Progress | None = None
    watermark: bool = True
    mark_id: int | None = None


@dataclass(frozen=True)
class RenderResult:
    """What one render made: `frames` at preprocess.fps from `audio_seconds` of speech, on `target` as
    `output`, in `wall_seconds`, written to `out` with its signed manifest (`manifest`, what sign_mp4
    returned) and the watermark's render id (`mark_id`, which the manifest records as its soft binding);
    `speech` (the name the manifest records) and `provenance` (the manifest read back) when the caller
    read it back (flows/render.py: render_file)."""

    frames: int
    audio_seconds: float
    video_seconds: float
    wall_seconds: float
    target: str
    output: Output
    out: str
    manifest: dict
    mark_id: int | None
    speech: str | None = None
    provenance: Verdict | None = None

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio rendered per second of wall time."""
        return self.audio_seconds / max(self.wall_seconds, 1e-9)


def clip_lips(target: Target, params: Params, lips: np.ndarray, loudness: np.ndarray | None = None,
              closed: np.ndarray | None = None) -> np.ndarray:
    """What render() does to a whole clip's raw lips in memory, before the generator; with `loudness` (the
    log energy per frame, features[:, LOG_ENERGY]) and the target's `closed` lips, the silence gate too."""
    stats = target.models.cgan_artifact.lips_stats
    lstm = target.models.lstm_artifact
    return speaker_lips(lips, params, target.stats, pooled_stats(stats), loudness, closed, lstm.output_stats,
                        lstm.shape)


def _speech_to_disk(
    models: Models, audio: Path, params: Params, scratch: Path, info: MediaInfo, progress: Progress | None
) -> tuple[np.memmap, dict, float]:
    """Step 1: (raw lips + loudness (T, LIPS_DIM + 1) on disk, the lips' moments, seconds of audio)."""
    p, r = params.preprocess, params.render
    estimate = frame_count(round(info.duration * p.sample_rate), p.sample_rate, p.fps)
    report = progress or (lambda phase, done, total: None)
    loudness = LOG_ENERGY
    blocks = iter_audio(audio, p.sample_rate, round(r.chunk_seconds * p.sample_rate), info)
    counted = _Counted(blocks)
    sums, chunk = None, max(1, round(r.chunk_seconds * p.fps))
    try:
        with open(scratch / "raw.f32", "wb") as file:
            for lips, features in stream_lips(models, counted, p.sample_rate, p.fps, p, chunk):
                file.write(
                    np.hstack([lips, features[:, loudness : loudness + 1]]).astype(np.float32).tobytes()
                )
                sums = sums or MomentSums(lips.shape[1])
                sums.add(lips)
                report("lips", sums.frames, max(estimate, sums.frames))
    except DecodeError as exc:
        raise RenderError(str(exc)) from None
    if sums is None:
        raise RenderError(f"{audio}: no audio samples decoded")
    raw = np.memmap(scratch / "raw.f32", np.float32, "r", shape=(sums.frames, sums.sums.shape[0] + 1))
    return raw, sums.moments(), counted.samples / p.sample_rate


class _Counted:
    """Blocks passed through, their samples counted: the length of the speech once read."""

    def __init__(self, blocks):
        self.blocks, self.samples = blocks, 0

    def __iter__(self):
        for block in self.blocks:
            self.samples += len(block)
            yield block


def _lips_to_disk(
    raw: np.memmap,
    every: LipsStats,
    params: Params,
    stats: dict[str, LipsStats],
    target: LipsStats,
    closed: np.ndarray,
    scratch: Path,
    output: LipsStats | None = None,
    shape: Shape | None = None,
) -> np.memmap:
    """Step 2: raw -> final lips chunk by chunk, each with the smoothing windows' margin (speaker_lips, in
    constant memory: the clip's statistics over its voiced frames, read from disk)."""
    r = params.render
    frames, dim = raw.shape[0], raw.shape[1] - 1
    corpus = pooled_stats(stats)
    chunk = max(1, round(r.chunk_seconds * params.preprocess.fps))
    silence = Silence(silence_threshold(raw[:, -1], r.silence_db), closed)
    clip = voiced_moments(raw, silence.threshold, chunk, every)
    source, prior = source_stats(r.align, clip, corpus, output)
    final = np.memmap(scratch / "final.f32", np.float32, "w+", shape=(frames, dim))
    half = max(r.smooth_window, GATE_WINDOW) // 2
    for start in range(0, frames, chunk):
        lo, hi = max(0, start - half), min(frames, start + chunk + half)
        block = np.asarray(raw[lo:hi])
        lips = final_lips(block[:, :dim], params, target, source, prior, corpus, block[:, -1], silence, shape)
        final[start : start + chunk] = lips[start - lo : start - lo + chunk]
    final.flush()
    return final


def render(
    audio: str | Path,
    out: str | Path,
    target: Target,
    params: Params,
    options: RenderOptions | None = None,
) -> RenderResult:
    """Render `audio` (any file ffmpeg reads with an audio stream) as `out`, an H.264 + AAC mp4 at
    preprocess.fps with the original audio, T = ceil(seconds * fps) frames (at most a frame longer), on
    `target` (models/rendering/loading.py: resolve_target gives it: its models, rows and footage).

    The output (RenderOptions.output, default render.output): "full", the target's own frames at their
    resolution with the lower face replaced (frames ping-pong when the speech outlasts the target);
    "panel", the target frame beside the composite over the lip traces; "face", the generated crop at
    render.size; "face_panel", the paper's Fig. 6.
    The mp4 carries a signed C2PA manifest declaring it synthetic (tasks/provenance/manifest.py), with the
    facts of tasks.provenance.manifest.render_facts and `options.provenance`; provenance.label also draws a
    visible label in the corner. Raises RenderError naming the file for unreadable speech or an
    unusable target; `out` is then untouched.
    """
    started = time.perf_counter()
    audio, out = Path(audio), Path(out)
    options = options or RenderOptions()
    models, paths = target.models, target.paths
    output = check_output(options.output or params.render.output)
    info = _check_speech(audio, models, params)
    mark_id = (new_mark_id() if options.mark_id is None else options.mark_id) if options.watermark else None
    marker = Marker(mark_id, params.preprocess.fps) if mark_id is not None else None
    layout = Layout(target, params, output, _real(audio, paths, output, options.real), marker)
    facts = render_facts(speech=audio, target_video=target.name, params_digest=digest(params),
                         lstm=models.lstm_path, cgan=models.cgan_path, **(options.provenance or {}))
    signer = Signer(facts, params.provenance.key_dir or None, source_type_of(output), mark_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reenact-render-") as scratch:
        raw, clip, seconds = _speech_to_disk(models, audio, params, Path(scratch), info, options.progress)
        stats = models.cgan_artifact.lips_stats
        final = _lips_to_disk(raw, clip, params, stats, layout.stats, layout.closed, Path(scratch),
                              models.lstm_artifact.output_stats, models.lstm_artifact.shape)
        if options.lips_out is not None:
            np.save(options.lips_out, np.asarray(final))
        _encode(layout.frames(final, raw), out, audio, seconds, params, signer, options.progress)
    return RenderResult(
        frames=len(final),
        audio_seconds=seconds,
        video_seconds=len(final) / params.preprocess.fps,
        wall_seconds=time.perf_counter() - started,
        target=target.name,
        output=output,
        out=str(out),
        manifest=signer.signed,
        mark_id=mark_id,
    )


def _real(audio: Path, paths: Paths, output: Output, real: str | None) -> str | None:
    """The corpus video the speech comes from: named, or found by the speech file's path."""
    real = real or real_video(audio, paths)
    if output == "face_panel" and real and not partition_dir(paths.shards, real).is_dir():
        raise RenderError(f"real frames {real!r}: no such video in {paths.shards}")
    return real


def _encode(
    frames: FrameStream,
    out: Path,
    audio: Path,
    seconds: float,
    params: Params,
    signer: Signer,
    progress: Progress | None,
) -> None:
    """Step 3: the layout's frames into the mp4, labelled when provenance.label says so."""
    label = params.provenance.label_text if params.provenance.label else None
    p = params.preprocess
    total = frame_count(round(seconds * p.sample_rate), p.sample_rate, p.fps)
    size = (frames.width, frames.height)
    encoder = Encoder(out, audio, seconds, size, p.fps, params.render, scale=frames.scale, finish=signer)
    with encoder:
        for start, batch in frames.batches:
            for frame in batch:  # one at a time: no copy of a batch of full frames
                encoder.write(draw_label(frame, label) if label else frame)
            if progress:
                progress("frames", start + len(batch), total)


def _check_speech(audio: Path, models: Models, params: Params) -> MediaInfo:
    try:
        info = probe(audio)
    except DecodeError as exc:
        raise RenderError(str(exc)) from None
    if not info.has_audio:
        raise RenderError(f"{audio}: has no audio stream")
    if abs(models.lstm_artifact.fps - params.preprocess.fps) > 1e-6:
        raise RenderError(
            f"the LSTM was trained at {models.lstm_artifact.fps} fps; preprocess.fps: {params.preprocess.fps}"
        )
    return info


@models_stage
def render_stage(paths: Paths, params: Params) -> None:
    """Render a held-out video's speech onto the target's own footage (paths.renders / demo.mp4) and the panel
    beside it (paths.renders / demo_panel.mp4), under --root: the DVC stage render."""

    from models.training.data import load_corpus
    from models.training.split import split_corpus

    val_videos = split_corpus(load_corpus(paths.shards), params).val_videos()
    if not val_videos:
        raise SystemExit(f"{paths.shards}: no validation video to render")
    video_id = val_videos[0]
    target = resolve_target(paths, params)
    for name, output in (("demo.mp4", "full"), ("demo_panel.mp4", "panel")):
        # a bar on a terminal, else a line at least every 15 s (tasks/config/progress.py)
        units = {"lips": "frames", "frames": "frames"}
        with Shown(f"render {name}", stream=sys.stdout, units=units) as shown:
            result = render(
                paths.videos / f"{video_id}.mp4",
                paths.renders / name,
                target,
                params,
                RenderOptions(output=output, real=video_id, progress=shown),
            )
        print(
            f"render: {result.out}: {video_id}'s speech on {result.target} ({output}), "
            f"{result.frames} frames ({result.audio_seconds:.2f} s of audio) "
            f"in {result.wall_seconds:.1f} s"
        )


def main(argv: list[str] | None = None) -> None:
    run(render_stage, argv)


if __name__ == "__main__":
    main()
