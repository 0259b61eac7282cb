"""The `reenact` command line, every command registered here (`reenact app` and `reenact live`, the web
app's, are written in flows/cli_serve.py; what commands share is flows/cli_support.py). The commands that
read the project (render, app; inspect reads the frame table alone) take `--root` and the location options
of every stage (tasks/config/entry.py), and pass one Paths down."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli_serve import live, web_app
from flows.cli_support import (
    UsageError,
    check_locations,
    check_name,
    check_out,
    checked_overrides,
    ended_by_signals,
    errors_in_one_line,
    finite_positive,
    held_out_measure,
    progress_bar,
    project_command,
    usage_error,
)
from tasks.config.entry import DEFAULT_ROOT, Overrides, Root, stage_paths
from tasks.config.paths import Paths

if TYPE_CHECKING:
    from tasks.provenance.mark_reader import MarkReading

app = typer.Typer(
    help="reenact: speech -> talking-head video. Build the dataset with Prefect, train and render with DVC.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """reenact: speech -> talking-head video."""


@app.command()
def version() -> None:
    """Print the versions of reenact and the tools it drives."""
    from importlib.metadata import version as v

    from tasks.rows.decode import ffmpeg_version

    for name in ("reenact", "prefect", "dvc", "yt-dlp", "dlib-bin", "torch", "pyarrow"):
        typer.echo(f"{name} {v(name)}")
    typer.echo(ffmpeg_version())


@app.command()
def inspect(
    shards_dir: Annotated[
        Path | None, typer.Argument(help="the frame table folder (default: the project's)")
    ] = None,
    root: Root = DEFAULT_ROOT,
    sheet: Annotated[Path | None, typer.Option(help="write a contact sheet of sample crops and lips")] = None,
) -> None:
    """Videos, frames, the share with a face, bytes on disk, and the schema with its metadata."""
    from tasks.table.inspect import report, write_sheet

    check_locations({"root": root})
    if sheet is not None:
        with errors_in_one_line():
            check_out(sheet, "--sheet", "the PNG")
    shards_dir = stage_paths(root, shards=shards_dir).shards
    if not shards_dir.is_dir():
        typer.echo(f"error: {shards_dir}: no such folder (`dvc repro preprocess` makes it)", err=True)
        raise typer.Exit(1)
    try:
        report(shards_dir)
        if sheet is not None:
            typer.echo(f"contact sheet: {write_sheet(shards_dir, sheet)}")
    except (ValueError, OSError) as exc:  # a corrupt part file (pyarrow's ArrowInvalid is a ValueError)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if str(shards_dir) not in message:
            message = f"{shards_dir}: {message}"
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None


Speech = Annotated[
    str,
    typer.Option(help="speech: any file ffmpeg reads (wav, mp3, m4a, a video's audio), or an http(s) URL"),
]
Target = Annotated[
    str | None,
    typer.Option(
        help="a target adapted by `reenact adapt`, or a video id of the corpus, whose footage speaks "
        "(default: render.target_video, else the generator's target)"
    ),
]
FaceOnly = Annotated[
    bool,
    typer.Option("--face-only", help="the generated 128 px face crop instead of the target's full frames"),
]
PanelFlag = Annotated[
    bool,
    typer.Option(help="target frame | composite over the lip traces (with --face-only: the paper's Fig. 6)"),
]
OUTPUT_OF_FLAGS = {
    (False, False): None,
    (True, False): "face",
    (False, True): "panel",
    (True, True): "face_panel",
}


@app.command()
@project_command
def render(
    audio: Speech,
    out: Annotated[Path, typer.Option(help="the mp4 to write")],
    paths: Paths,
    target: Target = None,
    face_only: FaceOnly = False,
    panel: PanelFlag = False,
    override: Overrides = None,
) -> None:
    """Make a talking-head video from any speech: the target's own footage with its lower face speaking,
    the audio muxed in, signed as synthetic (C2PA), every frame watermarked. Without --face-only or
    --panel, render.output decides."""
    from pyarrow import ArrowInvalid

    from flows.render import render_file
    from models.errors import CheckpointError
    from models.rendering.render import RenderError
    from tasks.config.params_loader import ParamsError

    known = (RenderError, ParamsError, FileNotFoundError, CheckpointError, ArrowInvalid)
    units = {"lips": "frames", "frames": "frames"}
    with errors_in_one_line(*known), ended_by_signals(), progress_bar("render", units) as progress:
        check_out(out)
        check_name("--target", target)
        if not audio.strip():
            raise UsageError("--audio '': give a speech file or an http(s) URL")
        result = render_file(
            audio,
            out,
            paths=paths,
            target=target,
            output=OUTPUT_OF_FLAGS[face_only, panel],
            overrides=checked_overrides(paths, override),
            progress=progress,
        )
    typer.echo(
        f"{result.out}: {result.frames} frames, {result.audio_seconds:.2f} s of audio on "
        f"{result.target} ({result.output}), in {result.wall_seconds:.1f} s "
        f"({result.realtime_factor:.1f}x real time); {result.provenance.describe()}"
    )


@app.command()
@project_command
def adapt(
    video: Annotated[
        Path, typer.Argument(help="a clip of one person speaking to camera, at least adapt.min_seconds long")
    ],
    name: Annotated[str, typer.Option(help="the target's name: letters, digits, _ and -")],
    paths: Paths,
    seconds: Annotated[
        float | None, typer.Option(help="wall-clock budget of the fine-tuning (default: adapt.seconds)",
                                   callback=finite_positive)
    ] = None,
    replace: Annotated[bool, typer.Option(help="adapt an existing target of that name again")] = False,
    strict: Annotated[bool, typer.Option(
        help="refuse footage outside what works well (head turned, face small or blurred, often no face) "
             "instead of warning")] = False,
    hold_out: Annotated[bool, typer.Option(
        help="fine-tune on the first 75% of the frames and measure the last quarter (reenact targets "
             "shows the figures)")] = False,
    override: Overrides = None,
) -> None:
    """Make a real person a target: check and preprocess VIDEO, look at it (one warning line for footage
    outside what works well), fine-tune the corpus generator on it (the corpus LSTM is kept) and register
    it in the project's targets folder for `reenact render --target NAME`. Nothing of the corpus is
    written; a bad clip registers nothing."""
    from models.errors import AdaptError, CheckpointError
    from models.training.adapt import adapt_target
    from tasks.config.params_loader import ParamsError, load_params

    units = {"preprocess": "frames", "fine-tune": "steps"}
    with errors_in_one_line(AdaptError, CheckpointError, ParamsError), ended_by_signals(), \
            progress_bar("adapt", units) as progress:
        check_name("--name", name)
        params = load_params(paths.params, checked_overrides(paths, override))
        fraction, measure = held_out_measure(params.device) if hold_out else (1.0, None)
        target = adapt_target(video, name, paths, params, seconds=seconds, replace=replace, progress=progress,
                              strict=strict, warn=lambda line: typer.echo(f"warning: {line}", err=True),
                              train_fraction=fraction, measure=measure)
    typer.echo(
        f"{target.name}: {target.frames} frames ({target.frames_with_face} with a face) of {video}, "
        f"{target.steps} fine-tuning steps, in {target.adapt_seconds:.0f} s -> {target.folder}\n"
        f"render with: reenact render --audio SPEECH --out OUT.mp4 --target {target.name}"
    )


@app.command()
def targets(root: Root = DEFAULT_ROOT) -> None:
    """The targets adapted by `reenact adapt`: name, frames, fine-tuning steps and time, when, from what clip
    and base, what adapt saw in the clip, and the figures of its held-out frames when it measured them."""
    from models.training.targets import describe, list_targets, missing_parts

    check_locations({"root": root})
    paths = stage_paths(root)
    found = list_targets(paths)
    for folder in sorted(paths.targets.glob("[!.]*")) if paths.targets.is_dir() else []:
        if folder.is_dir() and folder.name not in {t.name for t in found}:  # a render of it would fail
            lacks = ", ".join(missing_parts(paths, folder.name)) or "readable record"
            typer.echo(f"{folder.name}: not listed, it lacks its {lacks}; `reenact adapt VIDEO --name "
                       f"{folder.name} --replace` makes it again", err=True)
    if not found:
        typer.echo(f"no adapted targets in {stage_paths(root).targets} (`reenact adapt VIDEO --name NAME`)")
        return
    for t in found:
        typer.echo("\n".join(describe(t)))


VERIFY_EXIT = {
    "signed and intact": 0,
    "unsigned: no manifest, no reenact watermark (or no such file)": 1,
    "the file no longer matches its manifest": 3,
    "no manifest, but reenact's watermark is in the frames": 4,
}


@app.command(help=(
    "What a video's C2PA manifest says, whether the file still matches it, and whether reenact's "
    "invisible watermark is in its frames (and agrees with the manifest). Exit codes: "
    + "; ".join(f"{code}: {meaning}" for meaning, code in VERIFY_EXIT.items())
    + ". A copy re-encoded, scaled, cropped or trimmed by a platform has lost its manifest; "
    "the watermark usually survives."
))
def verify(
    file: Annotated[Path, typer.Argument(help="a video (an mp4 for the manifest; any video for the mark)")],
) -> None:
    from tasks.provenance.manifest import verify_mp4
    from tasks.provenance.mark_reader import read_mark

    if file.is_dir():
        raise usage_error(f"FILE {file}: a folder; give a video file")
    verdict = verify_mp4(file)
    mark = read_mark(file) if file.is_file() else None
    if not verdict.signed:
        if mark is not None and mark.found:
            typer.echo(f"{file}: no C2PA manifest; {mark.describe()}")
            raise typer.Exit(VERIFY_EXIT["no manifest, but reenact's watermark is in the frames"])
        said = "no such file" if mark is None else "unsigned: no manifest, no reenact watermark"
        typer.echo(f"{file}: {said}")
        raise typer.Exit(1)
    typer.echo(f"{file}: {verdict.describe()}")
    typer.echo(f"  digital source type  {verdict.source_type or '(none)'}")
    for key, value in verdict.facts.items():
        typer.echo(f"  {key:<20} {value}")
    typer.echo(f"  {'signer':<20} {verdict.signer}{'' if verdict.trusted else ' (not on a trust list)'}")
    typer.echo(f"  {'manifest':<20} {verdict.manifest}")
    typer.echo(f"  {'content sha256':<20} {verdict.digest}")
    typer.echo(f"  {'soft binding':<20} {verdict.soft_binding or '(none)'}")
    typer.echo(f"  {'watermark':<20} {_agreement(verdict.soft_binding, mark)}")
    if not verdict.ok:
        raise typer.Exit(3)


def _agreement(recorded: str, mark: MarkReading) -> str:
    """One line: the watermark read from the frames against the id the manifest records."""
    said = mark.describe()
    if not mark.found:
        return said
    if recorded and mark.id_hex == recorded:
        return f"{said}: agrees with the manifest"
    if recorded and mark.mark_id is not None:
        return f"{said}: DISAGREES with the manifest's {recorded}"
    return said


# `reenact app` and `reenact live`: the web app's commands (flows/cli_serve.py).
app.command(name="app")(web_app)
app.command()(live)


if __name__ == "__main__":
    app()
