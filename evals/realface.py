"""On a real person's footage, does the adapted frame generator paint a real mouth, not a smear?

    python -m evals.realface [CLIP ...] [--root DIR | --base | --work DIR] [--noise-cgan FILE] [--sheets DIR]
                             [--adapt-seconds S] [--baselines-only] [--threads 2] [--override K=V]
                             [--keep-arrays]

CLIP defaults to anchor_20s, speaker_15s, may_5s and map_5s of the real fixtures (tasks/config/paths.py:
REAL_FIXTURES; without them it stops in one line). The corpus models: by default the real-faces corpus
(evals/real_faces_corpus.py: data/sources/real_faces.txt, none of those four people, built once into
--work, default .cache/realface, by flows/corpus.py's stages; its training ~15 min on 2 cores), its frame
generator for ours and, for noise_, the paper's generator trained on its rows; with --base the shipped base
(models/base/lstm.pt and cgan.pt: `dvc repro base`), with no noise generator unless --noise-cgan; or those
of the project --root (its params.yaml, paths.lstm and paths.cgan: they must exist). Per clip, in a
temporary project of its own, they are adapted to the clip's first 75% of frames by
`reenact adapt`'s function (models/training/adapt.py: adapt_target, train_fraction=0.75); then every
held-out frame (the last 25%, never trained on) is painted given its own true lips, and measured
(models/evaluation/mouth_metrics.py) against the real frame:

    mouth_psnr, mouth_ssim   the adapted frame generator, composited into the crop as a render does
    sharpness, teeth         its lower face's gradient and its open mouths' bright share, over the real's
    detectability            a classifier's accuracy telling its lower face from the real one (0.5: none)
    detectability_blurred    ... the same of the real frames blurred as soft as ours (at most sharpness
                             0.9: detectability.CONTROL_SHARPNESS): under 0.8, blind
    detectability_neighbour  ... the same of the real frames with the real lower face of 2 frames later:
                             the scale to read ours on (a real mouth 67 ms off)
    detectability_resampled  ... the same of the real frames through the side ours is painted at (down
                             and back up): what the painting's size alone gives away (0.5 at its own)
                             (models/evaluation/detectability.py; mouth_metrics.py for the others)
    full_lmd_px              dlib on its full-frame composites vs the lips asked for (crop px) ...
    dlib_floor_px            ... and dlib on the real frames vs their own table lips: the floor
    flicker                  frame-to-frame change inside the mask / the real video's (1: natural)
    noise_*                  the paper's generator (cgan.condition=noise) adapted the same way
    nearest_*                nearest-lips retrieval from the training frames (models/evaluation/baselines.py)
    mean_*                   the mean training face
    adapt_seconds            the wall time of the adaptation
    measured_at              the crop side every method is scored at (--measure-size; default: the side
                             `reenact adapt` paints the clip's face at, adapt.face_size auto): a
                             generator painting smaller crops is scaled up to it, as a render scales it

The frame generator paints from the held-out frame's masked crop, the reference a render picks for those
lips from the adapted target's bank (adapt.references training crops; bent onto the frame and those lips
with adapt.warp_references), and the frame's own lips. noise_
needs a noise-conditioned corpus generator (--noise-cgan, or --root's own when it is one). A figure
that cannot be had is null, and stderr says why in one line. Prints one JSON object per clip, then the
JSON list of them all as the last line; stderr also has, per clip, each method's flicker (mouth_metrics.py),
the blurred control's sigma and the nearest-lips composites' full_lmd_px. A contact sheet per clip (rows:
held-out frames; columns: real | ours | nearest | mean, the lower face composited into the full frame and
cut out at its own pixels) goes to --sheets; with --keep-arrays, beside it CLIP.npz: the held-out real crops,
each method's composites, the soft masks and the frame numbers (what evals/detect_parts.py cuts apart).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from evals.real_faces_corpus import WORK, real_faces_corpus
from evals.realface_frames import full_frame_lmd, held_frames, lower_face_sheet
from models.artifacts import SHIPPED_BASE, CganArtifact
from models.common import finite_or_none
from models.errors import CheckpointError
from models.evaluation.baselines import (
    FaceRows,
    composite_crops,
    mean_faces,
    nearest_faces,
    paint_frames,
    read_face_rows,
    split_in_time,
)
from models.evaluation.detectability import blurred, control_sigma, detectability, neighbours, resampled
from models.evaluation.mouth_metrics import (
    dlib_floor_px,
    flicker,
    mouth_scores,
    sharpness,
    teeth,
)
from models.networks.cgan import generate_faces, load_generator
from models.networks.unet import UNetGenerator
from tasks.config.params import FACE_SIZES, Params
from tasks.config.params_loader import ParamsError, load_params, parse_override
from tasks.config.paths import PROJECT_ROOT, REAL_FIXTURES, Paths, require_real_fixtures
from tasks.ingest.video import process_video, video_id_of

CLIPS = [REAL_FIXTURES / f"{name}.mp4" for name in ("anchor_20s", "speaker_15s", "may_5s", "map_5s")]
SHEETS = Path(tempfile.gettempdir()) / "reenact-realface"
TRAIN_FRACTION = 0.75
PREFIX = {"ours": "", "noise": "noise_", "nearest": "nearest_", "mean": "mean_"}
SCORES = ("mouth_psnr", "mouth_ssim", "sharpness", "teeth", "detectability")  # every method's
KEYS = ("clip", "measured_at", "adapt_seconds", *SCORES, "detectability_blurred", "detectability_neighbour",
        "detectability_resampled", "full_lmd_px", "dlib_floor_px", "flicker",
        *(PREFIX[name] + key for name in ("noise", "nearest", "mean") for key in SCORES))


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def adapt(clip: Path, paths: Paths, params: Params, seconds: float | None) -> tuple[Path, float, Path]:
    """(the adapted generator's artifact, seconds it took, the target's shards): the clip made a
    target of the project `paths` (named by the clip's id) from its first TRAIN_FRACTION of frames."""
    from models.training.adapt import adapt_target  # `reenact adapt`

    started = time.perf_counter()
    target = adapt_target(clip, video_id_of(clip), paths, params, train_fraction=TRAIN_FRACTION,
                          seconds=seconds)
    say(f"{clip.name}: adapted at {target.face_size} px, {target.steps} steps in {target.finetune_seconds} s")
    return Path(target.paths.cgan), time.perf_counter() - started, target.paths.shards


def project(folder: Path, corpus: Paths, params: Params, cgan: Path | None = None) -> Paths:
    """A project in `folder` with `params` and the corpus models (its generator: `cgan` if given)."""
    paths = Paths.at(folder, lstm=corpus.lstm, cgan=cgan or corpus.cgan)
    folder.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return paths


def measure(clip: Path, scratch: Path, corpus: Paths, params: Params, plan: dict, args) -> dict:
    """One clip's JSON object (KEYS), its sheet written to args.sheets."""
    result: dict = dict.fromkeys(KEYS) | {"clip": clip.name}
    paths = project(scratch / "ours", corpus, params)
    painters, shards = {}, paths.shards
    if plan["ours"]:
        adapted, result["adapt_seconds"], shards = adapt(clip, paths, params, args.adapt_seconds)
        generator = (artifact := CganArtifact.load(adapted)).network(UNetGenerator, adapted)
    else:
        process_video(clip, paths.shards, params.preprocess)
    rows, total = read_face_rows(shards, video_id_of(clip))
    train, held = split_in_time(rows, total, TRAIN_FRACTION)
    if plan["ours"]:
        painters["ours"] = paint_frames(generator, artifact, held)
    if plan["noise"]:
        noise_params = load_params(paths.params, {"cgan.condition": "noise"})
        noise = project(scratch / "noise", corpus, noise_params, plan["noise"])
        noise_generator, noise_artifact = load_generator(adapt(clip, noise, noise_params,
                                                               args.adapt_seconds)[0])
        painters["noise"] = generate_faces(noise_generator, noise_artifact, held.lips)  # whole faces
    from models.training.adapt import auto_face_size  # `reenact adapt`'s choice

    result["measured_at"] = args.measure_size or auto_face_size(clip, params.preprocess)[0]
    if held.size != result["measured_at"]:
        train, held, painters = at_size(clip, scratch / "measured", params, result["measured_at"], held,
                                        painters)
    # a painting of another side than the crops measured (the paper's generator paints 128 px beside ours
    # at 256) scaled to them as a render scales it, never composited at the wrong size
    painters = {name: scaled(faces, held.size) for name, faces in painters.items()}
    painters |= {"nearest": nearest_faces(train, held), "mean": mean_faces(train, held)}
    composites = {name: composite_crops(faces, held) for name, faces in painters.items()}
    masks = held.measured_masks()
    for name, images in composites.items():
        for key, value in lower_face_scores(images, held, masks).items():
            result[PREFIX[name] + key] = value
    frames, indices = held_frames(clip, held, params.preprocess.fps), params.preprocess.lip_indices
    result["dlib_floor_px"] = dlib_floor_px(frames, held.crops, held.lips, indices, held.size)
    result["detectability_neighbour"] = _detected(neighbours(held.faces, masks), held, masks)
    if "ours" in composites:
        result["full_lmd_px"] = full_frame_lmd(frames, painters["ours"], held, indices)
        result["flicker"] = flicker(composites["ours"], masks, held.faces)
        sigma = control_sigma(held.faces, masks, result["sharpness"])
        result["detectability_blurred"] = _detected(blurred(held.faces, masks, sigma), held, masks)
        result["detectability_resampled"] = _detected(resampled(held.faces, masks, artifact.face_size),
                                                      held, masks)
        say(f"{clip.name}: the blurred control's sigma {sigma:.2f} px (sharpness {result['sharpness']:.3f})")
    say(json.dumps({"clip": clip.name, "train_frames": len(train), "held_out": len(held),
                    "nearest_full_lmd_px": full_frame_lmd(frames, painters["nearest"], held, indices),
                    **{f"{name}_flicker": round(flicker(images, masks, held.faces), 4)
                       for name, images in composites.items()}}))
    sheet = lower_face_sheet(args.sheets / f"{clip.stem}.png", frames, held, painters)
    say(f"{clip.name}: sheet {sheet}")
    if args.keep_arrays:
        arrays = args.sheets / f"{clip.stem}.npz"
        np.savez_compressed(arrays, real=held.faces, masks=masks, frames=held.frames, **composites)
        say(f"{clip.name}: arrays {arrays}")
    return {key: _rounded(value) for key, value in result.items()}


def at_size(clip: Path, shards: Path, params: Params, size: int, held: FaceRows,
            painters: dict[str, np.ndarray]) -> tuple[FaceRows, FaceRows, dict[str, np.ndarray]]:
    """(training rows, held-out rows, paintings) at `size`: the clip's rows made again at that size, and
    each painting of `held` scaled to it (cubic, as a render warps a crop into the frame), on the held-out
    frames both have. A generator painting smaller crops than the face has pixels is measured at them."""
    process_video(clip, shards, params.preprocess.model_copy(update={"face_size": size}))
    rows, total = read_face_rows(shards, video_id_of(clip))
    train, measured = split_in_time(rows, total, TRAIN_FRACTION)
    both = np.isin(held.frames, measured.frames)
    return (train, measured.take(np.isin(measured.frames, held.frames)),
            {name: scaled(faces[both], size) for name, faces in painters.items()})


def scaled(faces: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3): `faces` as they are when they have that side, else scaled to it (cubic, as a
    render warps a crop into the frame)."""
    if faces.shape[1] == size:
        return faces
    return np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC) for face in faces])


def lower_face_scores(images: np.ndarray, held: FaceRows, masks: np.ndarray) -> dict[str, float | None]:
    """SCORES of one method's composites against the held-out real crops."""
    return {**mouth_scores(images, held.faces, masks), "sharpness": sharpness(images, masks, held.faces),
            "teeth": teeth(images, masks, held.faces, held.landmarks),
            "detectability": _detected(images, held, masks)}


def _detected(images: np.ndarray, held: FaceRows, masks: np.ndarray) -> float | None:
    """detectability of `images` against the real crops; None (and why, on stderr) when it cannot be had."""
    try:
        return detectability(held.faces, images, masks, held.frames)
    except ValueError as exc:
        say(f"detectability: null: {exc}")
        return None


def _rounded(value):
    if isinstance(value, str | int) or value is None:
        return value
    value = finite_or_none(value)
    return None if value is None else round(value, 4)


def plan_methods(args, corpus: Paths, made_by: str) -> dict:
    """Which generators run: {"ours": bool, "noise": the noise generator's artifact or None}; each
    one that cannot run is said on stderr. Exits in one line when the corpus models are missing
    (`made_by`: what makes them, `{stage}` the stage of each)."""
    if args.baselines_only:
        say("ours and noise_: null (--baselines-only)")
        return {"ours": False, "noise": None}
    for path, stage in ((corpus.lstm, "train_lstm"), (corpus.cgan, "train_cgan")):
        if not path.exists():
            raise SystemExit(f"{path}: no corpus model ({made_by.format(stage=stage)}, "
                             f"or give --baselines-only)")
    try:
        import models.training.adapt  # noqa: F401
    except ImportError:
        say("ours and noise_: null: reenact adapt (models/training/adapt.py) is not in this checkout")
        return {"ours": False, "noise": None}
    condition = CganArtifact.load(corpus.cgan).condition
    ours, noise = condition == "frame", args.noise_cgan
    if not ours:
        say(f"ours: null: {corpus.cgan} is conditioned on {condition!r}; train it with cgan.condition=frame")
        noise = noise or (corpus.cgan if condition == "noise" else None)
    if noise is None:
        say("noise_: null: no noise-conditioned corpus generator (give one with --noise-cgan)")
    return {"ours": ours, "noise": noise}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals.realface", description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, metavar="CLIP",
                        help="default: anchor_20s, speaker_15s, may_5s and map_5s of the real fixtures")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--root", type=Path, default=None,
                        help="the corpus project (default: the real-faces corpus, built into --work)")
    start.add_argument("--base", action="store_true",
                        help=f"adapt from the shipped base ({SHIPPED_BASE}/lstm.pt, cgan.pt) with this "
                        "checkout's params, instead of the real-faces corpus")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="where the real-faces corpus is built and kept (default: %(default)s)")
    for location in ("params", "lstm", "cgan"):
        parser.add_argument(f"--{location}", type=Path, default=None, help="default: the project's")
    parser.add_argument("--noise-cgan", type=Path, default=None,
                        help="a noise-conditioned corpus generator, for noise_ (default: the real-faces "
                        "corpus's; none with --root or --base)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sheets", type=Path, default=SHEETS, help="default: %(default)s")
    parser.add_argument("--keep-arrays", action="store_true",
                        help="also write each clip's held-out crops, composites, masks to --sheets/CLIP.npz")
    parser.add_argument("--adapt-seconds", type=float, default=None, help="adapt's time budget per clip")
    parser.add_argument("--baselines-only", action="store_true", help="no corpus models: the baselines")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--measure-size", type=int, choices=FACE_SIZES, default=None,
                        help="the crop side every method is scored at (default: the one adapt.face_size "
                        "auto picks for the clip's face); a smaller painting is scaled up to it")
    return parser


def corpus_models(args) -> tuple[Paths, str]:
    """(the project whose params and models are adapted from, what makes its models): --base, --root, this
    checkout (--baselines-only: no models), or the real-faces corpus (built unless kept; sets
    args.noise_cgan to its noise generator unless given)."""
    if args.base:
        paths = Paths.at(PROJECT_ROOT, params=args.params, lstm=args.lstm or SHIPPED_BASE / "lstm.pt",
                         cgan=args.cgan or SHIPPED_BASE / "cgan.pt")
        return paths, "run `dvc repro base`"
    if args.root is None and args.baselines_only:  # no models needed: this checkout's params
        args.root = PROJECT_ROOT
    if args.root is None:  # the real-faces corpus, built once
        built = real_faces_corpus(args.work)
        args.root, args.noise_cgan = built["frame"].root, args.noise_cgan or built["noise"].cgan
    paths = Paths.at(args.root, params=args.params, lstm=args.lstm, cgan=args.cgan)
    return paths, f"run `dvc repro {{stage}}` in {args.root}"


def main(argv: list[str] | None = None) -> list[dict]:
    args = parser().parse_args(argv)
    if not args.clips:
        require_real_fixtures()
        args.clips = CLIPS
    missing = [str(clip) for clip in args.clips if not clip.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: no such file")
    corpus, made_by = corpus_models(args)
    try:
        plan = plan_methods(args, corpus, made_by)
        # adapt from the models chosen above (corpus_models), never adapt.base's shipped ones in their place
        overrides = {"adapt.base": "project", **dict(map(parse_override, args.override))}
        params = load_params(corpus.params, overrides)
    except (ParamsError, CheckpointError) as exc:
        raise SystemExit(str(exc)) from None
    torch.set_num_threads(args.threads)
    results = []
    for clip in args.clips:
        with tempfile.TemporaryDirectory(prefix="reenact-realface-") as scratch:
            results.append(measure(clip, Path(scratch), corpus, params, plan, args))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
