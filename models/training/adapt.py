"""A real person as a target in one step: `reenact adapt VIDEO --name NAME` (ARCHITECTURE.md, Adapted
targets). The clip is checked, ingested and preprocessed by the project's own per-video code
(tasks/ingest/download.py, tasks/ingest/video.py), the corpus generator is fine-tuned on its rows
(models/training/finetune.py) within a time budget, and the result is registered in
paths.target_dir(NAME), laid out as Paths.in_target says:

    targets/NAME/cgan.pt                          the fine-tuned generator (the corpus LSTM is kept)
    targets/NAME/shards/video_id=NAME/part-*.parquet   the clip's rows
    targets/NAME/videos/NAME.mp4                  the footage rendering composites into
    targets/NAME/target.json                      name, source, base, frames, steps, seconds, what adapt
                                                  saw in the clip, held-out figures (TARGET_RECORD)

Before it trains, adapt looks at the clip's rows (models/training/footage.py: head turn, face size, blur,
frames with a face): footage outside what works well is one warning line naming the problem and the
frames, or, `strict`, an AdaptError.

Everything is made in a hidden folder beside it and renamed into place at the end
(tasks.config.files.atomic_path): a bad clip or a killed run registers nothing, and nothing of the
corpus (paths.raw, paths.shards, paths.artifacts) is ever written. `reenact render --target NAME`
then renders with that folder (models/rendering/loading.py: resolve_target).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.artifacts import SHIPPED_BASE, CganArtifact, LstmArtifact
from models.errors import AdaptError
from models.training.finetune import finetune
from models.training.footage import Footage, face_px, look_at
from models.training.targets import Adapted
from tasks.config.files import Busy, atomic_path, exclusive, safe_id, sha256_file
from tasks.config.params import Params, PreprocessParams
from tasks.config.paths import TARGET_RECORD, Paths
from tasks.config.progress import Report, silent
from tasks.ingest.download import SourceError, fetch, source_id
from tasks.ingest.video import MIN_FACE_SHARE, VideoError, process_video
from tasks.rows.decode import DecodeError, MediaInfo, probe
from tasks.table.shards import partition_dir

# adapt.face_size auto: a face wider than this in the footage (px) is painted at LARGE_FACE_SIZE, grown
# from a smaller generator (models/training/finetune.py: grown) where the one adapted from is smaller.
LARGE_FACE_PX = 200.0
LARGE_FACE_SIZE = 256
# After fine-tuning, figures of the staged target (its project, its name) for target.json's held_out.
Measure = Callable[[Paths, str], dict[str, Any]]


def check_clip(video: Path, min_seconds: float) -> MediaInfo:
    """The clip's media info, or AdaptError naming it: missing, not media, no video or audio stream,
    shorter than `min_seconds`."""
    try:
        info = probe(video)
    except DecodeError as exc:
        raise AdaptError(str(exc)) from None
    if not info.has_video:
        raise AdaptError(f"{video}: has no video stream; adapt needs footage of a person speaking")
    if not info.has_audio:
        raise AdaptError(f"{video}: has no audio stream; adapt needs the person's own speech")
    if info.duration < min_seconds:
        raise AdaptError(f"{video}: {info.duration:.1f} s long; adapt needs at least {min_seconds:g} s "
                         "(adapt.min_seconds)")
    return info


def check_name(name: str, paths: Paths, replace: bool) -> None:
    """AdaptError unless `name` can name a new target (or, with `replace`, an existing one) of a
    project with corpus models to start from."""
    if safe_id(name) != name:
        raise AdaptError(f"name {name!r}: letters, digits, _ and - only (it names a folder and a video id)")
    if partition_dir(paths.shards, name).is_dir():
        raise AdaptError(f"name {name!r}: a video of the corpus ({paths.shards}) has that id; pick another")
    if paths.target_dir(name).exists() and not replace:
        raise AdaptError(f"name {name!r}: already a target ({paths.target_dir(name)}); "
                         "--replace adapts it again")
    for model in (paths.cgan, paths.lstm):
        if not model.is_file():
            shipped = model.parent == SHIPPED_BASE
            remedy = "`make base` rebuilds the shipped base" if shipped else "`dvc repro`"
            raise AdaptError(f"{model}: no such file; adapt starts from it ({remedy})")


def check_models(paths: Paths) -> CganArtifact:
    """The generator adapt starts from; CheckpointError (one line naming the file) unless it and the LSTM
    are readable artifacts: found before the clip is preprocessed, and no target is registered with a
    broken LSTM."""
    LstmArtifact.load(paths.lstm)
    return CganArtifact.load(paths.cgan)


def adapt_start(paths: Paths, params: Params) -> Paths:
    """The project as adapt starts from it: with adapt.base shipped, the real-faces base in the package
    (models/base/: its LSTM and frame generator); with project, the project's own artifacts."""
    if params.adapt.base == "shipped":
        return paths.moved(lstm=SHIPPED_BASE / "lstm.pt", cgan=SHIPPED_BASE / "cgan.pt")
    return paths


def _ingest(video: Path, name: str, into: Paths, params: Params) -> Path:
    """The clip as into.videos / NAME.mp4, as ingest delivers a local source (an mp4 copied, else
    converted to H.264 + AAC)."""
    try:
        fetch(str(video), into.videos, params.data, into.download_archive)
    except (SourceError, DecodeError) as exc:
        raise AdaptError(str(exc)) from None
    footage = into.videos / f"{name}.mp4"
    os.replace(into.videos / f"{source_id(str(video))}.mp4", footage)
    return footage


def _preprocess(video: Path, footage: Path, into: Paths, params: Params, report: Report) -> dict[str, Any]:
    """The footage's rows in into.shards; AdaptError when a face is in under MIN_FACE_SHARE of frames."""
    try:
        row = process_video(footage, into.shards, params.preprocess,
                            progress=lambda done, total: report("preprocess", done, total))
    except (DecodeError, VideoError) as exc:
        raise AdaptError(str(exc).replace(str(footage), str(video))) from None
    report("preprocess", row["frames"], row["frames"])
    if row["frames_with_face"] < MIN_FACE_SHARE * row["frames"]:
        raise AdaptError(f"{video}: {row['warning']}; adapt needs a face in at least "
                         f"{MIN_FACE_SHARE:.0%} of frames")
    return row


def face_size_for(video: Path, params: Params, start: CganArtifact) -> int:
    """The side of the target's crops, the generator `start` adapted to it: adapt.face_size, where auto is
    LARGE_FACE_SIZE when the face in the clip is wider than LARGE_FACE_PX (a big face painted at nearly
    its own pixels), else preprocess.face_size. A frame generator paints its own size or, grown
    (models/training/finetune.py: grown), a bigger one, never a smaller; the paper's generator only its
    own. AdaptError when adapt.face_size asks for what `start` cannot paint."""
    asked = params.adapt.face_size
    own, grows = start.face_size, start.condition == "frame"
    if asked != "auto" and (asked < own or (asked > own and not grows)):
        raise AdaptError(f"adapt.face_size {asked}: the generator adapt starts from paints {own} px crops "
                         f"({start.condition}-conditioned) and cannot paint {asked} px ones")
    if asked != "auto":
        return int(asked)
    return max(auto_face_size(video, params.preprocess)[0], own) if grows else own


def auto_face_size(footage: Path, preprocess: PreprocessParams) -> tuple[int, float]:
    """adapt.face_size auto's choice for `footage` (see face_size_for), and the face's width it saw."""
    width = face_px(footage, preprocess)
    return (LARGE_FACE_SIZE if width > LARGE_FACE_PX else preprocess.face_size), width


def detail_weight(params: Params) -> float:
    """The fine-detail loss's weight at the crops' size: at 256 px its 1 px band is an octave finer and
    holds about half the energy (1.85x less on may_5s), so the same weight hardly sharpens there
    (ARCHITECTURE.md, Adapted targets)."""
    a = params.adapt
    return a.detail_weight_256 if params.preprocess.face_size == LARGE_FACE_SIZE else a.detail_weight


def _finetune(name: str, paths: Paths, into: Paths, params: Params, frames: int, seconds: float,
              report: Report) -> int:
    """The corpus generator (paths.cgan) fine-tuned on the first `frames` rows of into.shards for
    adapt.epochs epochs at most, `seconds` of wall time at most, written to into.cgan; the steps done.
    Its progress: the steps the epochs plan (a fixed total), within the budget of `seconds`."""
    epochs = params.adapt.epochs
    cgan = params.cgan.model_copy(update={"finetune_epochs": epochs, "references": params.adapt.references,
                                          "epochs": max(params.cgan.epochs, epochs),
                                          "mouth_weight": params.adapt.mouth_weight,
                                          "detail_weight": detail_weight(params),
                                          "gradient_weight": params.adapt.gradient_weight,
                                          "warp_references": params.adapt.warp_references})
    steps, started = {"done": 0, "total": 0, "budget": seconds}, time.perf_counter()

    def progress(step: int, total: int) -> None:
        if not steps["done"]:  # the budget left when the phase's clock starts, at its first step
            steps["budget"] = max(0.0, seconds - (time.perf_counter() - started))
        steps.update(done=step, total=total)
        report("fine-tune", step, total, budget=steps["budget"])

    try:
        finetune(paths.moved(shards=into.shards), params.model_copy(update={"cgan": cgan}), name, into.cgan,
                 frames=slice(0, frames), seconds=seconds, progress=progress, ema=params.adapt.ema)
    except ValueError as exc:  # rows made with other lip points or crop size, no face among `frames`
        raise AdaptError(str(exc)) from None
    report("fine-tune", steps["done"], steps["total"], budget=steps["budget"])
    return steps["done"]


def _look(video: Path, into: Paths, name: str, params: Params, strict: bool,
          warn: Callable[[str], None]) -> Footage:
    """What the clip's rows show (models/training/footage.py); its problems are one line to `warn`, or,
    `strict`, an AdaptError."""
    footage = look_at(into.shards, name, params.adapt)
    if footage.problems:
        line = footage.warning(params.adapt)
        if strict:
            raise AdaptError(f"{video}: {line}; --strict refuses it, nothing is registered")
        warn(line)
    return footage


def adapt_target(video: str | Path, name: str, paths: Paths, params: Params, *, train_fraction: float = 1.0,
                 seconds: float | None = None, replace: bool = False, progress: Report | None = None,
                 strict: bool = False, warn: Callable[[str], None] | None = None,
                 measure: Measure | None = None) -> Adapted:
    """Make `video` (a local clip of one person speaking) the target `name` of the project at `paths`:
    check it, preprocess it, look at it (footage.py: one line to `warn` naming what is outside what works
    well; `strict`: an AdaptError instead), fine-tune the generator it starts from (adapt_start: the
    shipped base, or the project's paths.cgan) on the first `train_fraction` of its frames for at most
    `seconds` (default adapt.seconds), `measure` the staged target when given (its figures: target.json's
    held_out), and register it in paths.target_dir(name). `replace`: an existing target of that name is
    replaced (else refused). `progress(phase, done, total, budget)`: phases "preprocess" (frames),
    "fine-tune" (steps, within the budget).

    Raises AdaptError with one line naming the input and the problem; nothing is registered then, and
    nothing of the corpus is ever written."""
    started, video = time.perf_counter(), Path(video)
    if not 0.0 < train_fraction <= 1.0:
        raise AdaptError(f"train_fraction {train_fraction}: must be in (0, 1]")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise AdaptError(f"seconds {seconds}: a time budget is a finite number of seconds above 0")
    paths = adapt_start(paths, params)
    check_name(name, paths, replace)
    base = check_models(paths)
    check_clip(video, params.adapt.min_seconds)
    sized = params.preprocess.model_copy(update={"face_size": face_size_for(video, params, base)})
    params = params.model_copy(update={"preprocess": sized})  # the target's rows are made at its size
    made_targets = not paths.targets.exists()
    try:
        # One adapt of a name at a time: the lock is held from before the name is checked again to after
        # the target is in place, so no other adapt of it clears this one's staging folder or swaps in
        # its own.
        with exclusive(paths.targets / f".{name}.lock"), atomic_path(paths.target_dir(name)) as staging:
            check_name(name, paths, replace)  # again, under the lock: one may have registered it meanwhile
            # A killed adapt of this name left its staging folder (tasks.config.files.temporary_name).
            for leftover in paths.targets.glob(f".{name}.*.tmp"):
                shutil.rmtree(leftover, ignore_errors=True)
            record = _staged(video, name, paths, params, paths.in_target(staging), train_fraction,
                             params.adapt.seconds if seconds is None else seconds, progress or silent,
                             strict, warn or (lambda line: None), measure)
            target = Adapted(
                name=name, folder=paths.target_dir(name), paths=paths.in_target(paths.target_dir(name)),
                source=str(video.resolve()), adapt_seconds=round(time.perf_counter() - started, 1),
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                base="shipped" if params.adapt.base == "shipped" else str(paths.cgan.resolve()),
                base_sha256=sha256_file(paths.cgan), base_videos=len(base.lips_stats), **record,
            )
            (staging / TARGET_RECORD).write_text(json.dumps(target.record(), indent=2) + "\n")
    except BaseException as exc:
        if made_targets and paths.targets.is_dir() and not any(paths.targets.iterdir()):
            paths.targets.rmdir()  # made for the staging folder alone
        if isinstance(exc, Busy):
            raise AdaptError(f"name {name!r}: another `reenact adapt` of it is running ({exc}); "
                             "wait for it to end") from None
        raise
    return target


def _staged(video: Path, name: str, paths: Paths, params: Params, into: Paths, train_fraction: float,
            seconds: float, report: Report, strict: bool, warn: Callable[[str], None],
            measure: Measure | None) -> dict[str, Any]:
    """The target made in the staging project `into`: ingested, preprocessed, looked at, fine-tuned,
    given its LSTM and measured; what its record says of it (Adapted's fields)."""
    started = time.perf_counter()
    row = _preprocess(video, _ingest(video, name, into, params), into, params, report)
    footage = _look(video, into, name, params, strict, warn)
    preprocessed = time.perf_counter()
    train_frames = max(1, round(train_fraction * row["frames"]))
    steps = _finetune(name, paths, into, params, train_frames, seconds, report)
    shutil.copy2(paths.lstm, into.lstm)  # the LSTM renders of it run with: the one it started beside
    finished = time.perf_counter()
    held_out = measure(into, name) if measure is not None and train_fraction < 1.0 else None
    return {"sha256": row["sha256"], "frames": row["frames"], "frames_with_face": row["frames_with_face"],
            "train_frames": train_frames, "steps": steps, "face_size": params.preprocess.face_size,
            "preprocess_seconds": round(preprocessed - started, 1),
            "finetune_seconds": round(finished - preprocessed, 1),
            "footage": footage.figures | {"warning": footage.warning(params.adapt)}, "held_out": held_out}
