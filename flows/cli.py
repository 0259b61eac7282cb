"""The `reenact` command line."""

from __future__ import annotations

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


if __name__ == "__main__":
    app()
