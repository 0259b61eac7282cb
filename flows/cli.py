"""The `reenact` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="reenact: speech -> talking-head video. Build the dataset with Prefect, train and render with DVC.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """reenact: speech -> talking-head video."""


@app.command()
def version() -> None:
    """Print the versions of reenact and the tools it drives."""
    from importlib.metadata import version as v

    from tasks.decode import ffmpeg_version

    for name in ("reenact", "prefect", "dvc", "yt-dlp", "dlib-bin", "torch", "pyarrow"):
        typer.echo(f"{name} {v(name)}")
    typer.echo(ffmpeg_version())


@app.command()
def inspect(
    shards_dir: Annotated[Path, typer.Argument(help="the frame table folder")] = Path("data/shards"),
    sheet: Annotated[Path | None, typer.Option(help="write a contact sheet of sample crops and lips")] = None,
) -> None:
    """Videos, frames, the share with a face, bytes on disk, and the schema with its metadata."""
    from tasks.inspect import report, write_sheet

    if not report(shards_dir):
        raise typer.Exit(1)
    if sheet is not None:
        typer.echo(f"contact sheet: {write_sheet(shards_dir, sheet)}")


@app.command()
def render(
    audio: Annotated[Path, typer.Option(help="speech: any file ffmpeg reads (wav, mp3, m4a, a video's audio)")],
    out: Annotated[Path, typer.Option(help="the mp4 to write")],
    target: Annotated[str | None, typer.Option(
        help="video id whose face speaks (default: render.target_video, else the generator's target)")] = None,
    panel: Annotated[bool, typer.Option(help="the paper's Fig. 6: real | generated | lips, and traces")] = False,
    real: Annotated[str | None, typer.Option(
        help="corpus video whose real frames the panel shows (found by path for data/raw/videos/<id>.mp4)")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="params file")] = Path("params.yaml"),
    override: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, e.g. render.size=128 (repeatable)")] = None,
    lstm: Annotated[Path, typer.Option(help="audio -> lips weights")] = Path("artifacts/lstm.pt"),
    cgan: Annotated[Path, typer.Option(help="lips -> face weights")] = Path("artifacts/cgan.pt"),
    shards: Annotated[Path, typer.Option(help="the frame table, for --panel's real frames")] = Path("data/shards"),
) -> None:
    """Make a talking-head video from any speech: audio -> lips -> faces, with the audio muxed in."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from models.render import RenderError, load_models
    from models.render import render as render_video
    from tasks.params import ParamsError, load_params, parse_override

    try:
        params = load_params(params_file, dict(parse_override(text) for text in override or []))
        models = load_models(lstm, cgan, params.device)
        columns = (TextColumn("{task.description:>6}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        console = Console(stderr=True)
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            tasks = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            result = render_video(audio, out, models, params, target=target, panel=panel, progress=progress,
                                  real=real, shards=shards)
    except (RenderError, ParamsError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    speed = result["audio_seconds"] / max(result["wall_seconds"], 1e-9)
    typer.echo(f"{result['out']}: {result['frames']} frames, {result['audio_seconds']:.2f} s of audio on "
               f"{result['target']}'s face, in {result['wall_seconds']:.1f} s ({speed:.1f}x real time)")


if __name__ == "__main__":
    app()
