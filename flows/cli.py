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


if __name__ == "__main__":
    app()
