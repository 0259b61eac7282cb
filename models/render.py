"""Speech -> a talking-head mp4 (ARCHITECTURE.md, Rendering). The DVC stage `render`:

    python -m models.render [--params params.yaml] [--override KEY=VALUE] [--shards ...] [--videos ...]

writes renders/demo.mp4 (a held-out video's speech on the target's own full frames) and
renders/demo_panel.mp4 (the target frame beside the composite, with the lip traces).
`reenact render --audio speech.wav --out talk.mp4` is the same `render()` for any audio ffmpeg reads.

The steps, each in its own module: speech -> raw lips (models/speech.py, streamed), raw -> final
lips (models/lips.py: aligned to the target, smoothed, bounded to what the generator saw), final
lips -> faces (models/cgan.py), faces -> the target's frames (models/target.py, models/composite.py),
frames -> mp4 (models/media.py). Memory stays flat however long the speech: audio arrives through an
ffmpeg pipe, lips wait on disk (64 bytes a frame), frames stream into ffmpeg's stdin.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from models.errors import RenderError
from models.layouts import OUTPUTS, Layout, target_of
from models.lips import (
    MomentSums,
    align_lips,
    bound_lips,
    lips_moments,
    pooled_stats,
    smooth_lips,
    source_stats,
)
from models.loading import Models, load_models
from models.media import Encoder
from models.panel import real_video
from models.speech import frame_count, stream_lips
from tasks.decode import DecodeError, MediaInfo, iter_audio, probe
from tasks.entry import (
    DEFAULT_PARAMS,
    DEFAULT_SHARDS,
    DEFAULT_VIDEOS,
    Overrides,
    ParamsFile,
    Shards,
    Videos,
    Weights,
    run,
    stage_params,
)
from tasks.features import feature_layout
from tasks.params import Params, digest
from tasks.provenance import draw_label, render_facts, sign_mp4
from tasks.shards import partition_dir

Progress = Callable[[str, int, int], None]

__all__ = ["OUTPUTS", "Models", "RenderError", "clip_lips", "load_models", "render", "target_of"]


def final_lips(
    lips: np.ndarray, params: Params, target: dict, source: dict | None, prior: dict | None, corpus: dict
) -> np.ndarray:
    """Raw LSTM lips -> what the generator is given: aligned, smoothed, bounded (models/lips.py)."""
    r = params.render
    if r.align != "none":
        lips = align_lips(lips, target, source, prior)
    return bound_lips(smooth_lips(lips, r.smooth_window), corpus, r.max_lips_distance)


def clip_lips(models: Models, params: Params, lips: np.ndarray, target: str | None = None) -> np.ndarray:
    """What render() does to a whole clip's raw lips in memory, before the generator."""
    stats = models.cgan_ckpt["lips_stats"]
    corpus = pooled_stats(stats)
    source, prior = source_stats(params.render.align, lips_moments(lips), corpus)
    return final_lips(lips, params, stats[target_of(models, params, target)], source, prior, corpus)


def _speech_to_disk(
    models: Models, audio: Path, params: Params, scratch: Path, info: MediaInfo, progress: Progress | None
) -> tuple[np.memmap, dict, float]:
    """Step 1: (raw lips + loudness (T, LIPS_DIM + 1) on disk, the lips' moments, seconds of audio)."""
    p, r = params.preprocess, params.render
    estimate = frame_count(round(info.duration * p.sample_rate), p.sample_rate, p.fps)
    report = progress or (lambda phase, done, total: None)
    loudness = feature_layout(p.n_mfcc).index("log_energy")
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
    raw: np.memmap, clip: dict, params: Params, stats: dict, target: dict, scratch: Path
) -> np.memmap:
    """Step 2: raw -> final lips chunk by chunk, each with the smoothing window's margin."""
    r = params.render
    frames, dim = raw.shape[0], raw.shape[1] - 1
    corpus = pooled_stats(stats)
    source, prior = source_stats(r.align, clip, corpus)
    final = np.memmap(scratch / "final.f32", np.float32, "w+", shape=(frames, dim))
    chunk, half = max(1, round(r.chunk_seconds * params.preprocess.fps)), r.smooth_window // 2
    for start in range(0, frames, chunk):
        lo, hi = max(0, start - half), min(frames, start + chunk + half)
        lips = final_lips(np.asarray(raw[lo:hi, :dim]), params, target, source, prior, corpus)
        final[start : start + chunk] = lips[start - lo : start - lo + chunk]
    final.flush()
    return final


def render(
    audio: str | Path,
    out: str | Path,
    models: Models,
    params: Params,
    target: str | None = None,
    *,
    output: str | None = None,
    progress: Progress | None = None,
    shards: str | Path = "data/shards",
    videos: str | Path = "data/raw/videos",
    real: str | None = None,
    lips_out: str | Path | None = None,
    provenance: dict | None = None,
) -> dict:
    """Render `audio` (any file ffmpeg reads with an audio stream) as `out`, an H.264 + AAC mp4 at
    preprocess.fps with the original audio, T = ceil(seconds * fps) frames (at most a frame longer).

    output (default render.output): "full", the target's own frames at their resolution with the lower
    face replaced (frames ping-pong when the speech outlasts the target); "panel", the target frame
    beside the composite over the lip traces; "face", the generated crop at render.size; "face_panel",
    the paper's Fig. 6. target: the video id whose face speaks (default render.target_video, else the
    generator's target). real: the corpus video the speech comes from, for the traces' real mouth
    opening (found by path for <shards>/../raw/videos/<id>.mp4). progress(phase, done, total): phases
    "lips" then "frames". lips_out: also save the final lips as .npy.
    The mp4 carries a signed C2PA manifest declaring it synthetic (tasks/provenance.py), with the
    facts of tasks.provenance.render_facts; `provenance` adds or overrides facts (e.g. "speech_name"
    for speech downloaded from a URL). provenance.label also draws a visible label in the corner.
    Raises RenderError naming the file for unreadable speech or an unusable target; `out` is then
    untouched. Returns {"frames", "audio_seconds", "video_seconds", "wall_seconds", "target", "output",
    "out", "manifest" (what sign_mp4 returned)}.
    """
    started = time.perf_counter()
    audio, out, shards, videos = Path(audio), Path(out), Path(shards), Path(videos)
    output = output or params.render.output
    info = _check_speech(audio, models, params, output)
    target = target_of(models, params, target)
    layout = Layout(models, params, output, target, shards, videos, _real(audio, shards, output, real))
    signer = _Signer(audio, target, models, params, provenance)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reenact-render-") as scratch:
        raw, clip, seconds = _speech_to_disk(models, audio, params, Path(scratch), info, progress)
        final = _lips_to_disk(raw, clip, params, models.cgan_ckpt["lips_stats"], layout.stats, Path(scratch))
        if lips_out is not None:
            np.save(lips_out, np.asarray(final))
        _encode(
            layout.frames(models, params, final, raw, shards), out, audio, seconds, params, signer, progress
        )
    return {
        "frames": len(final),
        "audio_seconds": seconds,
        "video_seconds": len(final) / params.preprocess.fps,
        "wall_seconds": time.perf_counter() - started,
        "target": target,
        "output": output,
        "out": str(out),
        "manifest": signer.signed,
    }


def _real(audio: Path, shards: Path, output: str, real: str | None) -> str | None:
    """The corpus video the speech comes from: named, or found by the speech file's path."""
    real = real or real_video(audio, shards)
    if output == "face_panel" and real and not partition_dir(shards, real).is_dir():
        raise RenderError(f"real frames {real!r}: no such video in {shards}")
    return real


class _Signer:
    """Turns the encoder's finished temporary file into the signed `out` (tasks/provenance.py)."""

    def __init__(self, audio: Path, target: str, models: Models, params: Params, extra: dict | None):
        self.facts = render_facts(
            speech=audio,
            target_video=target,
            params_digest=digest(params),
            lstm=models.lstm_path,
            cgan=models.cgan_path,
            **(extra or {}),
        )
        self.key_dir = params.provenance.key_dir or None
        self.signed: dict = {}

    def __call__(self, temp: Path, final: Path) -> None:
        self.signed.update(sign_mp4(temp, final, self.facts, self.key_dir))


def _encode(
    layout: tuple,
    out: Path,
    audio: Path,
    seconds: float,
    params: Params,
    signer: _Signer,
    progress: Progress | None,
) -> None:
    """Step 3: the layout's frames into the mp4, labelled when provenance.label says so."""
    (width, height), size, frames = layout
    label = params.provenance.label_text if params.provenance.label else None
    p = params.preprocess
    total = frame_count(round(seconds * p.sample_rate), p.sample_rate, p.fps)
    with Encoder(out, audio, seconds, width, height, p.fps, size, params.render, signer) as encoder:
        for start, batch in frames:
            for frame in batch:  # one at a time: no copy of a batch of full frames
                encoder.write(draw_label(frame, label) if label else frame)
            if progress:
                progress("frames", start + len(batch), total)


def _check_speech(audio: Path, models: Models, params: Params, output: str) -> MediaInfo:
    if output not in OUTPUTS:
        raise RenderError(f"output {output!r}: not one of {', '.join(OUTPUTS)}")
    try:
        info = probe(audio)
    except DecodeError as exc:
        raise RenderError(str(exc)) from None
    if not info.has_audio:
        raise RenderError(f"{audio}: has no audio stream")
    if abs(models.lstm_ckpt["fps"] - params.preprocess.fps) > 1e-6:
        raise RenderError(
            f"the LSTM was trained at {models.lstm_ckpt['fps']} fps; preprocess.fps: {params.preprocess.fps}"
        )
    return info


def render_stage(
    params_file: ParamsFile = DEFAULT_PARAMS,
    override: Overrides = None,
    shards: Shards = DEFAULT_SHARDS,
    videos: Videos = DEFAULT_VIDEOS,
    lstm: Weights = Path("artifacts/lstm.pt"),
    cgan: Weights = Path("artifacts/cgan.pt"),
    out_dir: Annotated[Path, typer.Option(help="where the renders go")] = Path("renders"),
) -> None:
    """Render a held-out video's speech onto the target's own footage (renders/demo.mp4) and the panel
    beside it (renders/demo_panel.mp4): the DVC stage render."""
    params = stage_params(params_file, override)

    from models.data import load_corpus, split_corpus

    val_videos = split_corpus(load_corpus(shards), params).val_videos()
    if not val_videos:
        raise SystemExit(f"{shards}: no validation video to render")
    video_id = val_videos[0]
    models = load_models(lstm, cgan, params.device)
    for name, output in (("demo.mp4", "full"), ("demo_panel.mp4", "panel")):
        result = render(
            videos / f"{video_id}.mp4",
            out_dir / name,
            models,
            params,
            output=output,
            real=video_id,
            shards=shards,
            videos=videos,
        )
        print(
            f"render: {result['out']}: {video_id}'s speech on {result['target']} ({output}), "
            f"{result['frames']} frames ({result['audio_seconds']:.2f} s of audio) "
            f"in {result['wall_seconds']:.1f} s"
        )


def main(argv: list[str] | None = None) -> None:
    run(render_stage, argv)


if __name__ == "__main__":
    main()
