"""Does reenact's watermark outlive what platforms do to a video, and never show up where it is not?
Printed as one JSON object.

    python -m benchmarks.watermark [--root .] [--renders 20] [--seconds 4.5] [--keep DIR]

- Renders: `--renders` real renders (render() as every entry point calls it), full frame and face crop
  in turn, over the generator's targets in turn, each driven by different speech: espeak-ng sentences
  in several voices, the real speech fixture, the audio of the real clips and of the demo videos, each
  cut to `--seconds`.
- Read back (`read_back`): the share of renders whose mark is read with the render's own id after each
  of: nothing; H.264 CRF 28; scaled to 360 p (the short side); cropped 10 % on each side; a 3 s
  excerpt from the middle; all of these at once (crop, scale, excerpt, CRF 28). ffmpeg makes each
  copy; the manifest does not survive any of them.
- False positives (`false_positive`): the share of unmarked real clips (the real fixtures' *.mp4 and
  grid/*.mpg, tasks/config/paths.py: REAL_FIXTURES; the project's raw videos) that read as marked, with
  the highest tag statistic seen.
- PSNR (`psnr_db`): the mark against the unmarked frame, computed on unmarked renders' own frames with
  the mark put on as render() puts it (per render: over all its frames; and the worst single frame).
- Cost (`realtime_factor`): every render is made twice in this run, marked and unmarked (the order
  alternating), same speech, target and output, after one warm-up render: audio seconds per wall
  second of each set, the drop, and the median of the pairs' drops (cores shared with other work make
  single timings noisy). `mark_ms_per_frame`: the marking alone, timed on the unmarked renders' frames,
  beside `render_ms_per_frame` of the unmarked renders.
The project (models, frame table, footage) is the one under --root (default: this checkout).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from models.rendering.mark import Marker
from models.rendering.render import RenderOptions, load_models, render, resolve_target
from models.rendering.target import pingpong, read_target_rows
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, REAL_FIXTURES, Paths
from tasks.provenance.mark_reader import read_mark
from tasks.rows.decode import iter_frames, probe

REAL = REAL_FIXTURES
SENTENCES = [
    ("en", "The quick brown fox jumps over the lazy dog, and then it runs back home."),
    ("en-us+f3", "Please remember to bring your notes to the meeting tomorrow morning."),
    ("en+m3", "We measured the signal again, and the numbers did not change at all."),
    ("en-gb-x-rp+f2", "A video of a person can be made to say things they never said."),
]
# 360 p: the short side scaled to 360 (a portrait video becomes 360 wide, as platforms do it)
SCALE_360 = "scale='if(gt(iw,ih),-2,360)':'if(gt(iw,ih),360,-2)'"
TRANSFORMS = {
    "none": None,
    "crf28": ["-c:v", "libx264", "-crf", "28"],
    "360p": ["-vf", SCALE_360, "-c:v", "libx264", "-crf", "18"],
    "crop10": ["-vf", "crop=iw*0.8:ih*0.8", "-c:v", "libx264", "-crf", "18"],
    "excerpt3s": ["-c:v", "libx264", "-crf", "18"],
    "all": ["-vf", f"crop=iw*0.8:ih*0.8,{SCALE_360}", "-c:v", "libx264", "-crf", "28"],
}
EXCERPT_S = 3.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def speeches(folder: Path, videos: Path, seconds: float) -> list[Path]:
    """Speech files of `seconds`: espeak-ng voices, the real speech, real clips' and demo videos' audio."""
    found = []
    for index, (voice, text) in enumerate(SENTENCES):
        wav = folder / f"espeak_{index}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        found.append(wav)
    sources = [REAL / "RD_Radio31_000.wav", *sorted(REAL.glob("*.mp4")), *sorted(videos.glob("*.mp4"))]
    for source in sources:
        if source.exists() and probe(source).has_audio:
            cut = folder / f"{source.stem}.wav"
            ffmpeg("-ss", "0.5", "-i", str(source), "-t", f"{seconds}", "-ac", "1", "-ar", "16000", str(cut))
            found.append(cut)
    for wav in found[: len(SENTENCES)]:  # espeak's sentences, padded or cut to the same length
        ffmpeg("-i", str(wav), "-af", "apad", "-t", f"{seconds}", str(wav.with_suffix(".cut.wav")))
        wav.with_suffix(".cut.wav").replace(wav)
    return found


def copy_of(path: Path, name: str, out: Path) -> Path:
    args = TRANSFORMS[name]
    if args is None:
        return path
    middle = max(0.0, probe(path).duration / 2 - EXCERPT_S / 2)
    trim = ["-ss", f"{middle:.3f}", "-t", f"{EXCERPT_S}"] if name in ("excerpt3s", "all") else []
    ffmpeg(*trim, "-i", str(path), *args, "-c:a", "aac", str(out))
    return out


def mark_psnr(path: Path, result: dict, models, paths: Paths) -> tuple[float, float, float]:
    """(PSNR over all frames, worst frame's, seconds spent marking) of the mark put on the unmarked
    render `path` as render() puts it: onto the face crop, or through the target frame's crop transform."""
    marker = Marker(result.mark_id, 30.0)
    rows = read_target_rows(paths.shards, result.target) if result.output == "full" else None
    size = models.cgan_artifact.face_size
    errors, worst, spent = [], np.inf, 0.0
    for index, frame in enumerate(iter_frames(path, 30.0)):
        frame = frame.copy()
        started = time.perf_counter()
        if rows is None:
            marked = marker.crop(frame, index)
        else:
            row = pingpong(index, len(rows))
            marked = marker.frame(frame.copy(), rows.crop[row], size, index, rows.landmarks[row])
        spent += time.perf_counter() - started
        mse = float(np.mean((marked.astype(np.float64) - frame) ** 2))
        errors.append(mse)
        if mse > 0:
            worst = min(worst, 10 * np.log10(255**2 / mse))
    return 10 * np.log10(255**2 / max(np.mean(errors), 1e-12)), worst, spent


def unmarked_clips(videos: Path) -> list[Path]:
    """The real fixtures and the project's raw videos, each clip once (a project made of the fixtures
    holds copies of them)."""
    clips = {}
    real = [*sorted(REAL.glob("*.mp4")), *sorted((REAL / "grid").glob("*.mpg"))]
    for clip in [*real, *sorted(videos.glob("*"))]:
        clips.setdefault(clip.stem, clip)
    return [clip for clip in clips.values() if clip.suffix in (".mp4", ".mpg")]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watermark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT,
                        help="the project (default: this checkout)")
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.5, help="length of each render's speech")
    parser.add_argument("--keep", type=Path, default=None, help="keep the renders and copies here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    paths = Paths.at(args.root.resolve())
    params = load_params(paths.params)
    models = load_models(paths.lstm, paths.cgan, params.device)
    targets = sorted(models.cgan_artifact.lips_stats)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reenact-watermark-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        speech = speeches(folder, paths.videos, args.seconds)
        jobs = [(speech[i % len(speech)], targets[i % len(targets)], ("full", "face")[i % 2])
                for i in range(args.renders)]
        render(speech[0], folder / "warm_up.mp4", resolve_target(paths, params, None, models), params,
               RenderOptions(output="face"))
        renders, reads = [], {name: [] for name in TRANSFORMS}
        psnrs, worst, audio_s, wall_s = [], [], {True: 0.0, False: 0.0}, {True: 0.0, False: 0.0}
        drops, marking, frames, resolved = [], 0.0, 0, {}
        for index, (audio, target, output) in enumerate(jobs):
            out = folder / f"render_{index:02d}_{output}_{target}.mp4"
            made = {}
            for marked in (True, False) if index % 2 else (False, True):
                name = out if marked else out.with_name(f"{out.stem}_unmarked.mp4")
                options = RenderOptions(output=output, watermark=marked)
                if target not in resolved:
                    resolved[target] = resolve_target(paths, params, target, models)
                made[marked] = render(audio, name, resolved[target], params, options)
                audio_s[marked] += made[marked].audio_seconds
                wall_s[marked] += made[marked].wall_seconds
            mark_id = made[True].mark_id
            speed = {m: made[m].realtime_factor for m in made}
            drops.append(100 * (1 - speed[True] / speed[False]))
            row = {"render": out.name, "speech": audio.name, "id": f"{mark_id:08x}"}
            for name in TRANSFORMS:
                reading = read_mark(copy_of(out, name, folder / f"{out.stem}_{name}.mp4"))
                reads[name].append(reading.found and reading.mark_id == mark_id)
                row[name] = round(reading.tag_z, 1) if reads[name][-1] else f"missed ({reading.describe()})"
            whole, low, spent = mark_psnr(Path(made[False]["out"]), made[True], models, paths)
            marking, frames = marking + spent, frames + made[False]["frames"]
            psnrs.append(whole)
            worst.append(low)
            renders.append(row)
        clips = unmarked_clips(paths.videos)
        false = [(clip.name, read_mark(clip)) for clip in clips]
        unmarked, marked = (audio_s[m] / wall_s[m] for m in (False, True))
        rtf = {"unmarked": round(unmarked, 3), "marked": round(marked, 3),
               "drop_percent": round(100 * (1 - marked / unmarked), 1),
               "median_pair_drop_percent": round(float(np.median(drops)), 1),
               "mark_ms_per_frame": round(1000 * marking / frames, 3),
               "render_ms_per_frame": round(1000 * wall_s[False] / frames, 2)}
    print(json.dumps({
        "renders": len(renders),
        "outputs": {o: sum(r["render"].split("_")[2] == o for r in renders) for o in ("full", "face")},
        "targets": sorted({j[1] for j in jobs}),
        "speech": sorted({r["speech"] for r in renders}),
        "read_back": {name: round(float(np.mean(hits)), 3) for name, hits in reads.items()},
        "unmarked_clips": len(false),
        "false_positive": round(float(np.mean([r.found for _, r in false])), 3),
        "unmarked_max_tag_z": round(max(r.tag_z for _, r in false), 2),
        "unmarked_unread": [name for name, r in false if r.frames < 4],
        "psnr_db": {"mean_over_renders": round(float(np.mean(psnrs)), 2),
                    "lowest_render": round(float(np.min(psnrs)), 2),
                    "worst_frame": round(float(np.min(worst)), 2)},
        "realtime_factor": rtf,
        "per_render": renders,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }, indent=1))


if __name__ == "__main__":
    main()
