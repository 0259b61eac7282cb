"""Speech -> talking-head mp4: audio features -> lips (LSTM) -> aligned, smoothed lips -> faces (cGAN).
The DVC stage `render`:

    python -m models.render [--params params.yaml] [--shards data/shards] [--videos data/raw/videos]

renders renders/demo.mp4 (a held-out video's speech on the target face) and renders/demo_panel.mp4
(the same beside the real frames, the lips and the mouth-opening trace: the paper's Fig. 6).
`reenact render --audio speech.wav --out talk.mp4` is the same `render()` for any audio ffmpeg reads.

Memory stays flat however long the audio: it is decoded through an ffmpeg pipe and turned into
lips `render.chunk_seconds` at a time, with enough overlap that every MFCC window, delta and LSTM
window is the one a whole-file run computes; the lips (64 bytes a frame) wait on disk while
their statistics are gathered for the alignment, and frames stream into ffmpeg's stdin.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.cgan import IMAGE_SIZE, generate_faces, load_generator
from models.common import pick_device
from models.lstm import load_lstm, predict_lips
from models.media import AudioReader, Encoder, RenderError
from models.panel import Panel, real_video
from tasks.decode import DecodeError, probe
from tasks.features import DELTA_WIDTH, audio_features
from tasks.params import Params, PreprocessParams, load_params, parse_override
from tasks.shards import partition_dir

# Lips directions in which a clip varies less than this share of the target's mean variance are
# noise, not speech: whitening must not blow them up to the target's scale.
RIDGE = 0.01
# A clip whose lips vary less than this share of the corpus's variance is mostly silence: its
# statistics lean on the corpus's, so a silent clip keeps a closed mouth instead of the mean one.
SHRINK = 0.05

Progress = Callable[[str, int, int], None]


@dataclass
class Models:
    """What rendering needs, loaded once: the LSTM and the generator with their checkpoints."""

    lstm: torch.nn.Module
    lstm_ckpt: dict
    generator: torch.nn.Module
    cgan_ckpt: dict
    device: torch.device


def load_models(lstm_path: str | Path = "artifacts/lstm.pt", cgan_path: str | Path = "artifacts/cgan.pt",
                device: str = "auto") -> Models:
    """Both networks in eval mode on `device` ("auto": CUDA when present). FileNotFoundError if absent."""
    device = pick_device(device)
    lstm, lstm_ckpt = load_lstm(lstm_path, device)
    generator, cgan_ckpt = load_generator(cgan_path, device)
    # NHWC activations: oneDNN's transposed convolutions run ~1.5x faster on CPU, and the faces come
    # out in the (T, H, W, 3) layout ffmpeg wants without a copy.
    generator = generator.to(memory_format=torch.channels_last)
    if list(lstm_ckpt["lip_indices"]) != list(cgan_ckpt["lip_indices"]):
        raise RenderError(f"{lstm_path} and {cgan_path} were trained on different lip points")
    return Models(lstm, lstm_ckpt, generator, cgan_ckpt, device)


def frame_count(samples: int, sample_rate: int, fps: float) -> int:
    """Frames at times i / fps that cover `samples`: ceil(seconds * fps), immune to 8.0 * 30 = 240.00000000000003."""
    return math.ceil(samples * fps / sample_rate - 1e-9)


def speech_lips(models: Models, samples: np.ndarray, sample_rate: int, fps: float,
                params: PreprocessParams) -> np.ndarray:
    """(T, 16) raw LSTM lips in [0, 1] for the whole of `samples` (mono float32), frames at times i / fps,
    T = ceil(len(samples) / sample_rate * fps). The features are tasks.features.audio_features, as in
    preprocessing. Holds the whole clip: `stream_lips` is the same in constant memory."""
    times = np.arange(frame_count(len(samples), sample_rate, fps)) / fps
    features = audio_features(samples, sample_rate, times, params)
    return predict_lips(models.lstm, models.lstm_ckpt, features)


def stream_lips(models: Models, blocks: Iterable[np.ndarray], sample_rate: int, fps: float,
                params: PreprocessParams, chunk_frames: int = 300) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`speech_lips` over audio arriving in blocks of any size: yields (lips (n, 16), features (n, 28))
    for consecutive frames, `chunk_frames` at a time, equal to the whole-file result.

    Each chunk is computed over its frames plus a margin on both sides, wide enough for the deltas
    (DELTA_WIDTH frames) and the LSTM's window (2 * context + 1 frames) to see the same neighbours as
    in a whole-file run; the margin frames are thrown away. Samples are kept from the first one the
    next chunk's earliest window needs.
    """
    margin = models.lstm_ckpt["context"] + DELTA_WIDTH
    # Half of the feature window, rounded up, and one sample of slack for the rounding of centres.
    pad = round(params.window_ms / 1000 * sample_rate) + 1
    blocks = iter(blocks)
    buffer, offset = np.zeros(0, np.float32), 0  # offset: global index of buffer[0]
    done, total = 0, None
    while total is None or done < total:
        if total is None:
            needed = math.ceil((done + chunk_frames + margin - 1) / fps * sample_rate) + pad
            pieces = [buffer]
            have = offset + len(buffer)
            while have < needed:
                block = next(blocks, None)
                if block is None:
                    total = frame_count(have, sample_rate, fps)
                    break
                pieces.append(np.asarray(block, np.float32).reshape(-1))
                have += len(pieces[-1])
            buffer = np.concatenate(pieces)
            if total is not None and done >= total:
                break
        end = done + chunk_frames if total is None else min(done + chunk_frames, total)
        first = max(0, done - margin)
        last = end + margin if total is None else min(end + margin, total)
        # Times relative to the buffer's start: the same window centres as over the whole file.
        times = np.arange(first, last) / fps - offset / sample_rate
        features = audio_features(buffer, sample_rate, times, params)
        lips = predict_lips(models.lstm, models.lstm_ckpt, features)
        yield lips[done - first:end - first], features[done - first:end - first]
        done = end
        keep = max(0, math.floor((done - margin) / fps * sample_rate) - pad)
        if keep > offset:
            buffer, offset = buffer[keep - offset:], keep


def lips_moments(lips: np.ndarray) -> dict:
    """{"mean", "cov", "frames"} of (T, 16) lips, in the form of cgan_ckpt["lips_stats"][video_id]."""
    lips = np.asarray(lips, np.float64)
    cov = np.cov(lips, rowvar=False) if len(lips) > 1 else np.zeros((lips.shape[1], lips.shape[1]))
    return {"mean": lips.mean(0), "cov": cov, "frames": len(lips)}


def pooled_stats(stats: dict[str, dict]) -> dict:
    """The lip statistics of several videos together (cgan_ckpt["lips_stats"]): the corpus's."""
    parts = [(np.asarray(s["mean"], np.float64), np.asarray(s["cov"], np.float64), int(s["frames"]))
             for s in stats.values()]
    n = sum(frames for _, _, frames in parts)
    mean = sum(frames * m for m, _, frames in parts) / n
    scatter = sum((frames - 1) * c + frames * np.outer(m - mean, m - mean) for m, c, frames in parts)
    return {"mean": mean, "cov": scatter / max(n - 1, 1), "frames": n}


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def align_lips(lips: np.ndarray, target: dict, source: dict | None = None, prior: dict | None = None) -> np.ndarray:
    """(T, 16) lips -> the same motion in the target video's lip statistics (the paper's affine alignment).

    `target`, `source` and `prior` are {"mean", "cov"[, "frames"]} (cgan_ckpt["lips_stats"][video_id],
    `lips_moments`, `pooled_stats`). The map x -> mu_t + A (x - mu_s) takes a Gaussian of the source's
    mean and covariance onto the target's with the least displacement (A symmetric: the optimal
    transport map), so opening stays opening and width stays width. `source` defaults to the lips'
    own statistics; with `prior` (the corpus's), a clip that barely moves borrows its statistics from
    the prior in proportion. A small ridge keeps directions in which the source does not move from
    being amplified. Never NaN; a constant input maps to the target mean (without a prior) or to the
    target's counterpart of the prior's shape at that point (with one); output clipped to [0, 1].
    """
    lips = np.asarray(lips, np.float64)
    source = lips_moments(lips) if source is None else source
    mean_s, cov_s = np.asarray(source["mean"], np.float64), np.asarray(source["cov"], np.float64)
    if prior is not None:
        mean_p, cov_p = np.asarray(prior["mean"], np.float64), np.asarray(prior["cov"], np.float64)
        weight = np.trace(cov_s) / (np.trace(cov_s) + SHRINK * np.trace(cov_p) + 1e-30)
        mean_s = weight * mean_s + (1 - weight) * mean_p
        cov_s = weight * cov_s + (1 - weight) * cov_p
    mean_t, cov_t = np.asarray(target["mean"], np.float64), np.asarray(target["cov"], np.float64)
    cov_s = cov_s + RIDGE * np.trace(cov_t) / len(cov_t) * np.eye(len(cov_t))
    root = _sqrtm(cov_s)
    inverse_root = np.linalg.pinv(root, hermitian=True)
    transport = inverse_root @ _sqrtm(root @ cov_t @ root) @ inverse_root
    aligned = mean_t + (lips - mean_s) @ transport.T
    return np.clip(np.nan_to_num(aligned, nan=0.5), 0.0, 1.0).astype(np.float32)


def smooth_lips(lips: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` frames (odd; 1 = off). At the ends it averages the frames
    there are, so the first and last frames are not pulled towards zero."""
    if window % 2 == 0:
        raise ValueError(f"smooth window must be odd, got {window}")
    lips = np.asarray(lips, np.float32)
    if window == 1 or len(lips) < 2:
        return lips.copy()
    half = window // 2
    totals = np.concatenate([np.zeros((1, lips.shape[1])), np.cumsum(lips, 0, dtype=np.float64)])
    index = np.arange(len(lips))
    lo, hi = np.maximum(index - half, 0), np.minimum(index + half + 1, len(lips))
    return ((totals[hi] - totals[lo]) / (hi - lo)[:, None]).astype(np.float32)


def _source_stats(mode: str, clip: dict, stats: dict[str, dict]) -> tuple[dict | None, dict | None]:
    """(source, prior) for align_lips from render.align and the clip's own lip moments."""
    corpus = pooled_stats(stats)
    return (corpus, None) if mode == "corpus" else (clip, corpus)


def target_of(models: Models, params: Params, target: str | None = None) -> str:
    """The video whose face speaks: `target`, else render.target_video, else the generator's target."""
    return target or params.render.target_video or models.cgan_ckpt["target_video"]


def clip_lips(models: Models, params: Params, lips: np.ndarray, target: str | None = None) -> np.ndarray:
    """What render() does to a clip's raw lips before the generator, on a whole clip in memory:
    aligned to the target's lip statistics as render.align says, then smoothed."""
    r, stats = params.render, models.cgan_ckpt["lips_stats"]
    if r.align != "none":
        source, prior = _source_stats(r.align, lips_moments(lips), stats)
        lips = align_lips(lips, stats[target_of(models, params, target)], source, prior)
    return smooth_lips(lips, r.smooth_window)


def render(audio: str | Path, out: str | Path, models: Models, params: Params, target: str | None = None,
           panel: bool = False, progress: Progress | None = None, *, real: str | None = None,
           shards: str | Path = "data/shards", lips_out: str | Path | None = None) -> dict:
    """Render `audio` (any file ffmpeg reads with an audio stream) as `out`, an H.264 + AAC mp4 at
    preprocess.fps with the original audio, exactly as many frames as cover the audio (T = ceil(seconds
    * fps): the video is at most one frame longer than the audio).

    target: the video id whose face speaks (default render.target_video, else the generator's target).
    panel: the paper's Fig. 6 layout (models/panel.py), with the real frames when the audio is
    <shards>/../raw/videos/<video_id>.mp4 of a video in `shards`, or `real` names a video there.
    progress(phase, done, total): called as frames are done; phase "lips" (total estimated from the
    container's duration) then "frames". lips_out: also save the final (T, 16) lips as .npy.
    A clip of any length down to one frame is rendered (0.1 s -> 3 frames); pure silence gives a
    closed mouth. Raises RenderError, naming the file, for no audio stream, an unreadable file or
    no audio samples; `out` is then untouched (written under a temporary name, then renamed).
    Returns {"frames", "audio_seconds", "video_seconds", "wall_seconds", "target", "out"}.
    """
    started = time.perf_counter()
    audio, out, shards = Path(audio), Path(out), Path(shards)
    p, r = params.preprocess, params.render
    fps, sample_rate = p.fps, p.sample_rate
    report = progress or (lambda phase, done, total: None)
    try:
        info = probe(audio)
    except DecodeError as exc:
        raise RenderError(str(exc)) from None
    if not info.has_audio:
        raise RenderError(f"{audio}: has no audio stream")
    if abs(models.lstm_ckpt["fps"] - fps) > 1e-6:
        raise RenderError(f"the LSTM was trained at {models.lstm_ckpt['fps']} fps; preprocess.fps is {fps}")
    stats = models.cgan_ckpt["lips_stats"]
    target = target_of(models, params, target)
    if target not in stats:
        raise RenderError(f"target {target!r}: not a video the generator knows ({', '.join(sorted(stats))})")
    real = real or real_video(audio, shards)
    if panel and real and not partition_dir(shards, real).is_dir():
        raise RenderError(f"real frames {real!r}: no such video in {shards}")
    chunk = max(1, round(r.chunk_seconds * fps))
    estimate = frame_count(round(info.duration * sample_rate), sample_rate, fps)
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="reenact-render-") as scratch:
        # 1. audio -> raw lips on disk, with the sums the alignment needs
        reader = AudioReader(audio, sample_rate, block=round(r.chunk_seconds * sample_rate))
        sums, squares, frames = np.zeros(16), np.zeros((16, 16)), 0
        with open(Path(scratch) / "raw.f32", "wb") as file:
            for lips, features in stream_lips(models, reader, sample_rate, fps, p, chunk):
                file.write(np.hstack([lips, features[:, -2:-1]]).astype(np.float32).tobytes())
                x = lips.astype(np.float64)
                sums += x.sum(0)
                squares += x.T @ x
                frames += len(lips)
                report("lips", frames, max(estimate, frames))
        if frames == 0:
            raise RenderError(f"{audio}: no audio samples decoded")
        raw = np.memmap(Path(scratch) / "raw.f32", np.float32, "r", shape=(frames, 17))

        # 2. raw -> final lips: aligned to the target, smoothed, chunk by chunk with the window's margin
        mean = sums / frames
        clip = {"mean": mean, "cov": (squares - frames * np.outer(mean, mean)) / max(frames - 1, 1), "frames": frames}
        source, prior = _source_stats(r.align, clip, stats)
        final = np.memmap(Path(scratch) / "final.f32", np.float32, "w+", shape=(frames, 16))
        half = r.smooth_window // 2
        for start in range(0, frames, chunk):
            lo, hi = max(0, start - half), min(frames, start + chunk + half)
            lips = np.asarray(raw[lo:hi, :16])
            if r.align != "none":
                lips = align_lips(lips, stats[target], source, prior)
            final[start:start + chunk] = smooth_lips(lips, r.smooth_window)[start - lo:start - lo + chunk]
        final.flush()
        if lips_out is not None:
            np.save(lips_out, np.asarray(final))

        # 3. final lips -> faces -> ffmpeg, one noise vector for every frame
        view = Panel(r.size, final, raw[:, 16], models.cgan_ckpt["lip_indices"], fps, stats[target],
                     shards, real) if panel else None
        width, height = view.shape if view else (IMAGE_SIZE, IMAGE_SIZE)
        scale = r.size if not view and r.size != IMAGE_SIZE else None
        seconds = reader.samples / sample_rate
        with Encoder(out, audio, seconds, width, height, fps, scale, r) as encoder, torch.inference_mode():
            for start in range(0, frames, r.batch_size):
                faces = generate_faces(models.generator, models.cgan_ckpt, np.asarray(final[start:start + r.batch_size]),
                                       batch_size=r.batch_size)
                encoder.write(view.compose(start, faces) if view else faces)
                report("frames", start + len(faces), frames)
    return {"frames": frames, "audio_seconds": seconds, "video_seconds": frames / fps,
            "wall_seconds": time.perf_counter() - started, "target": target, "out": str(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted-key override, e.g. render.size=128 (repeatable)")
    parser.add_argument("--shards", default="data/shards", help="frame table (default: %(default)s)")
    parser.add_argument("--videos", default="data/raw/videos", help="source videos (default: %(default)s)")
    parser.add_argument("--lstm", default="artifacts/lstm.pt")
    parser.add_argument("--cgan", default="artifacts/cgan.pt")
    parser.add_argument("--out-dir", default="renders", help="(default: %(default)s)")
    args = parser.parse_args(argv)
    params = load_params(args.params, dict(parse_override(text) for text in args.override))

    from models.data import load_corpus, split_corpus

    val_videos = split_corpus(load_corpus(args.shards), params).val_videos()
    if not val_videos:
        raise SystemExit(f"{args.shards}: no validation video to render")
    video_id = val_videos[0]
    audio = Path(args.videos) / f"{video_id}.mp4"
    models = load_models(args.lstm, args.cgan, params.device)
    out_dir = Path(args.out_dir)
    for name, panel in (("demo.mp4", False), ("demo_panel.mp4", True)):
        result = render(audio, out_dir / name, models, params, panel=panel, real=video_id if panel else None,
                        shards=args.shards)
        print(f"render: {result['out']}: {video_id}'s speech on {result['target']}, {result['frames']} frames "
              f"({result['audio_seconds']:.2f} s of audio) in {result['wall_seconds']:.1f} s")


if __name__ == "__main__":
    main()
