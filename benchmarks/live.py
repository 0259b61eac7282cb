"""Live rendering as a microphone drives it, printed last as one flat JSON object (ARCHITECTURE.md, Live).

    python -m benchmarks.live [AUDIO] [--target NAME] [--lookahead-ms 0 100 200 300 400] [--seconds 0]
                              [--repeat 1] [--chunk-ms 20] [--no-naive] [--root ...] [--params ...]
                              [--override KEY=VALUE]

A feeder thread hands the speech to the stream in `--chunk-ms` chunks on the wall clock, as a microphone
would; the stream (models/rendering/stream.py) paints what they make ready, and each frame is encoded as
the app sends it (JPEG at live.jpeg_quality). Per frame: when the speech it shows arrived (the end of the
chunk holding the sample at its time) and when it left (encoded).

- latency_ms_p50, latency_ms_p95: frame left - its speech arrived (the lookahead is in it).
- fps: frames painted per second of the video made (the speech less its last lookahead, which a microphone
  never ends); dropped: the share of frames dropped (the CPU behind).
- av_drift_ms: how far the video slipped against the speech over the run: the median latency of the last
  tenth of frames less that of the first tenth (a viewer hearing the speech delayed by a constant sees
  the mouth drift by this much).
- sync_r: Pearson r of the mouth opening (tasks/rows/landmarks.py: lips_opening) of the lips each live
  frame was painted from against the lips an offline `render()` of the same speech gave that frame.
- naive_*: the same run with the stream's lookahead at 0 and no dropping (live.max_batch 64), in the
  same process: every frame painted as soon as its own time is heard, however late that makes it.
- load_avg_1min: the machine's load before and after (others' work on the same cores slows every figure).
- lookahead: {lookahead_ms: {latency_ms_p95, sync_r, dropped}} for each --lookahead-ms; the headline
  figures are those at live.lookahead_ms.

AUDIO defaults to the real speech fixture (benchmarks/render.py: default_audio). The target is the
project's default (render.target_video, else the generator's) or --target.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import simplejpeg
import soundfile

from benchmarks.render import default_audio
from models.rendering.render import RenderOptions, render, resolve_target
from models.rendering.stream import LiveStream
from tasks.config.entry import parse_overrides
from tasks.config.params import Params
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths
from tasks.rows.decode import read_audio
from tasks.rows.landmarks import lips_opening


def feed(samples: np.ndarray, chunk: int, rate: int, into: queue.Queue, start: float) -> None:
    """Put `samples` into `into` `chunk` samples at a time, each when its last sample has been 'spoken'
    (start + its end / rate on the wall clock), as (chunk, arrival time); None at the end."""
    for begin in range(0, len(samples), chunk):
        end = min(begin + chunk, len(samples))
        delay = start + end / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        into.put((samples[begin:end], time.perf_counter()))
    into.put(None)


def live_run(stream: LiveStream, samples: np.ndarray, chunk_ms: float, quality: int) -> dict:
    """One real-time run: per painted frame (index, latency s, left s after start), and the lips."""
    rate = stream.rate
    chunk = max(1, round(chunk_ms / 1000 * rate))
    chunks: queue.Queue = queue.Queue()
    start = time.perf_counter() + 0.05
    feeder = threading.Thread(target=feed, args=(samples, chunk, rate, chunks, start), daemon=True)
    feeder.start()
    arrivals: list[float] = []  # wall time at which sample k * chunk arrived, per chunk
    records, lips, ended = [], {}, False
    while not ended:
        got = [chunks.get()]
        while not chunks.empty():
            got.append(chunks.get_nowait())
        ended = got[-1] is None
        got = [item for item in got if item is not None]
        for piece, at in got:
            arrivals.append(at)
        # no flush at the end: a microphone never ends, and the last frames would be painted without dropping
        frames = stream.push(np.concatenate([piece for piece, _ in got])) if got else []
        for frame in frames:
            simplejpeg.encode_jpeg(np.ascontiguousarray(frame.image), quality)
            left = time.perf_counter()
            holding = min(int(frame.time * rate) // chunk, len(arrivals) - 1)  # the chunk with its sample
            records.append((frame.index, left - arrivals[holding], left - start))
            lips[frame.index] = frame.lips
    feeder.join()
    return {"records": np.array(records), "lips": lips, "dropped": stream.dropped, "total": stream.next,
            "seconds": stream.next / stream.fps}


def figures(run: dict, offline: np.ndarray, lip_indices: list[int]) -> dict:
    """The JSON figures of one live run against the offline lips."""
    records = run["records"]
    latency = records[:, 1] * 1000
    tenth = max(1, len(latency) // 10)
    index = np.array(sorted(run["lips"]))
    index = index[index < len(offline)]
    live = lips_opening(np.stack([run["lips"][i] for i in index]), lip_indices)
    ref = lips_opening(offline[index], lip_indices)
    return {
        "latency_ms_p50": round(float(np.percentile(latency, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latency, 95)), 1),
        "fps": round(len(records) / run["seconds"], 2),
        "dropped": round(run["dropped"] / max(run["total"], 1), 4),
        "av_drift_ms": round(float(np.median(latency[-tenth:]) - np.median(latency[:tenth])), 1),
        "sync_r": round(float(np.corrcoef(live, ref)[0, 1]), 4),
        "frames": int(run["total"]),
    }


def with_live(params: Params, **changes) -> Params:
    return params.model_copy(update={"live": params.live.model_copy(update=changes)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", type=Path)
    parser.add_argument("--target")
    parser.add_argument("--lookahead-ms", type=float, nargs="+", default=[0, 100, 200, 300, 400])
    parser.add_argument("--seconds", type=float, default=0.0, help="the speech's first seconds only (0: all)")
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1, help="the speech this many times over")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--params", type=Path)
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the naive stream (--no-naive halves a long run)")
    args = parser.parse_args(argv)
    paths = Paths.at(args.root)
    params = load_params(args.params or paths.params, parse_overrides(args.override))
    audio = args.audio or default_audio(paths.videos)
    rate = params.preprocess.sample_rate
    samples = read_audio(audio, rate)
    samples = samples[: round(args.seconds * rate)] if args.seconds > 0 else samples
    samples = np.tile(samples, max(1, args.repeat))
    target = resolve_target(paths, params, args.target)  # an adapted target brings its own models
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="reenact-live-") as scratch:
        speech = Path(scratch) / "speech.wav"
        soundfile.write(speech, samples, rate)
        options = RenderOptions(output="full", lips_out=Path(scratch) / "lips.npy", mark_id=1)
        offline_seconds = render(speech, Path(scratch) / "offline.mp4", target, params, options).wall_seconds
        offline = np.load(Path(scratch) / "lips.npy")
    indices = target.models.cgan_artifact.lip_indices
    quality = params.live.jpeg_quality

    def measure(p: Params) -> dict:
        started = time.perf_counter()
        stream = LiveStream(target, p, mark_id=1)
        stream.warm_up()
        ready = time.perf_counter() - started
        return {**figures(live_run(stream, samples, args.chunk_ms, quality), offline, indices),
                "start_s": round(ready, 2), "size": f"{stream.footage.width}x{stream.footage.height}"}

    table = {}
    for lookahead in args.lookahead_ms:
        key = f"{lookahead:g}"
        table[key] = measure(with_live(params, lookahead_ms=lookahead))
        print(f"lookahead {key} ms: {json.dumps(table[key])}", file=sys.stderr, flush=True)
    naive = measure(with_live(params, lookahead_ms=0.0, max_batch=64)) if args.naive else {}
    head = dict(table.get(f"{params.live.lookahead_ms:g}") or measure(params))
    result = {
        **head,
        "load_avg_1min": [round(before, 2), round(os.getloadavg()[0], 2)],  # others' work on this CPU
        "lookahead_ms": params.live.lookahead_ms,
        **{f"naive_{k}": naive[k] for k in ("latency_ms_p50", "latency_ms_p95", "fps", "dropped", "sync_r")
           if k in naive},
        "speech_seconds": round(len(samples) / rate, 2),
        "offline_render_seconds": round(offline_seconds, 2),
        "target": target.name,
        "size": head.pop("size"),
        "lookahead": {k: {m: v[m] for m in ("latency_ms_p95", "latency_ms_p50", "sync_r", "dropped")}
                      for k, v in table.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
