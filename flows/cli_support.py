"""What the `reenact` commands (flows/cli.py) share: the project's location options (`project_command`),
the checks of an argument before any work, errors as one line, signals, and progress
(tasks/config/progress.py).

Exit statuses: 0 done; 1 an input that cannot be used (a file missing, unreadable or corrupt, speech
that is not audio, a clip with no face); 2 a bad argument, said in one line naming it (a value out of
range or not finite, an `--override` that is not KEY=VALUE, not YAML, an unknown key or a bad value or
names a device this machine lacks, a location of the wrong kind, a port in use), as click's own usage
errors are; 128 + N stopped by signal N, with nothing half-written left (flows/stopping.py).
"""

from __future__ import annotations

import contextlib
import functools
import inspect as signatures
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from flows.stopping import Stopped, stop_on_signals
from tasks.config.entry import DEFAULT_ROOT, Cgan, Lstm, ParamsFile, Root, Shards, Videos, stage_paths
from tasks.config.params_loader import OverrideError, ParamsError
from tasks.config.paths import Paths
from tasks.config.progress import Progress

# The options that say where the project is: (annotation, default) of each, as every stage has them.
LOCATIONS: dict[str, tuple[Any, Any]] = {
    "root": (Root, DEFAULT_ROOT),
    "params_file": (ParamsFile, None),
    "lstm": (Lstm, None),
    "cgan": (Cgan, None),
    "shards": (Shards, None),
    "videos": (Videos, None),
}
FILES, FOLDERS = ("params_file", "lstm", "cgan"), ("shards", "videos")


class UsageError(ValueError):
    """A bad argument: one line naming it, exit 2."""


def usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def check_locations(given: dict[str, Path | None]) -> None:
    """The location options given on the command line, of the kind each names: --params, --lstm and
    --cgan not folders, --shards and --videos existing folders, --root not a file."""
    for name, path in given.items():
        flag = "--params" if name == "params_file" else f"--{name}"
        if path is None:
            continue
        if name in FILES and path.is_dir():
            raise usage_error(f"{flag} {path}: a folder; it names a file")
        if name in FOLDERS and not path.is_dir():
            raise usage_error(f"{flag} {path}: {'not a folder' if path.exists() else 'no such folder'}")
        if name == "root" and path.exists() and not path.is_dir():
            raise usage_error(f"--root {path}: not a folder")


def project_command(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., paths: Paths)` as a command whose options end with --root and the locations
    (LOCATIONS) in place of `paths`, which it is given built from them (check_locations first)."""
    own = [p for p in signatures.signature(command, eval_str=True).parameters.values() if p.name != "paths"]
    kind = signatures.Parameter.KEYWORD_ONLY
    locations = [signatures.Parameter(name, kind, default=default, annotation=annotation)
                 for name, (annotation, default) in LOCATIONS.items()]

    @functools.wraps(command)
    def with_paths(*args: Any, **options: Any) -> None:
        given = {name: options.pop(name) for name in LOCATIONS}
        check_locations(given)
        root, given["params"] = given.pop("root"), given.pop("params_file")
        command(*args, paths=stage_paths(root, **given), **options)

    with_paths.__signature__ = signatures.Signature([*own, *locations])
    with_paths.__annotations__ = {p.name: p.annotation for p in (*own, *locations)}
    return with_paths


@contextlib.contextmanager
def errors_in_one_line(*kinds: type[BaseException]) -> Iterator[None]:
    """An error of these kinds ends the command with one line on stderr: exit status 2 for a bad
    argument (UsageError, OverrideError), 1 for the rest."""
    try:
        yield
    except (UsageError, OverrideError, *kinds) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, UsageError | OverrideError) else 1) from None


@contextlib.contextmanager
def ended_by_signals() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP end the command as an error does, its partial files removed on the way
    out (flows/stopping.py); then one line, exit status 128 + the signal."""
    try:
        with stop_on_signals():
            yield
    except Stopped as stopped:
        typer.echo(f"error: {stopped}; what it was writing is removed", err=True)
        raise


def finite_positive(value: float | None) -> float | None:
    """A typer callback for a time budget: a finite number of seconds above 0 (click lets nan through)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value}: a finite number of seconds above 0")
    return value


def checked_overrides(paths: Paths, override: list[str] | None) -> dict[str, Any]:
    """The --override values, tried on the project's params before anything loads: OverrideError naming
    one that is not KEY=VALUE, not YAML, an unknown key, a bad value or a CUDA device this machine
    lacks; ParamsError for a bad params file."""
    from models.common import pick_device
    from tasks.config.entry import parse_overrides
    from tasks.config.params_loader import load_params

    overrides = parse_overrides(override)
    params = load_params(paths.params, overrides)
    if "device" in overrides:
        try:
            pick_device(params.device)
        except ParamsError as exc:
            raise OverrideError(f"override device={overrides['device']}: {exc}") from None
    return overrides


def check_out(out: Path, flag: str = "--out", what: str = "the mp4") -> None:
    """UsageError unless `out` can name a file to write: not a folder, not under a file."""
    if out.is_dir():
        raise UsageError(f"{flag} {out}: a folder; give {what} file to write")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"{flag} {out}: {parent} is a file, not a folder")


def check_name(flag: str, name: str | None) -> None:
    """UsageError unless `name` (of --target, --name) can name a target: a video id of the corpus or an
    adapted target's name, both letters, digits, _ and - (at most 64; tasks/config/files.py: safe_id)."""
    from tasks.config.files import safe_id

    if name is not None and safe_id(name) != name:
        raise UsageError(f"{flag} {name[:80]!r}: a target's name is letters, digits, _ and - (at most 64)")


def held_out_measure(device: str) -> tuple[float, Callable[[Paths, str], dict[str, Any]]]:
    """`reenact adapt --hold-out`: the share of a clip's frames fine-tuned on, and what measures the staged
    target on the rest as evaluate measures a held-out quarter (models/evaluation/held_out.py: the mouth
    figures beside the nearest-lips and mean-face baselines'), for target.json's held_out."""
    from models.common import finite_or_none
    from models.evaluation.held_out import TRAIN_FRACTION, held_out_mouth
    from models.rendering.loading import load_models

    def measure(project: Paths, name: str) -> dict[str, Any]:
        figures = held_out_mouth(load_models(project.lstm, project.cgan, device), project.shards, name)
        return {key: finite_or_none(round(float(value), 4)) if value is not None else None
                for key, value in figures.items() if key != "mouth_video"}

    return TRAIN_FRACTION, measure


@contextlib.contextmanager
def progress_bar(label: str, units: dict[str, str] | None = None) -> Iterator[Progress]:
    """A progress(phase, done, total, budget=None) callback on stderr (tasks/config/progress.py): a bar per
    phase with a fixed total and the time left on a terminal, else a plain `LABEL: ...` line at least
    every 15 s."""
    with Progress(label, units=units) as progress:
        yield progress
