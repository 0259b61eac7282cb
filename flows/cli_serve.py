"""The web app's commands: `reenact app` (the whole app) and `reenact live` (its Live view of one
target), both serving until stopped (flows/serve.py) with one login rule (flows/app_guard.py).
flows/cli.py registers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli_support import check_name, errors_in_one_line, finite_positive, project_command
from tasks.config.paths import Paths

Host = Annotated[str, typer.Option(help="address to listen on; beyond loopback the app asks for a login")]
Port = Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)]
AuthFile = Annotated[
    Path | None,
    typer.Option(help="logins, one `user:password` a line (or $REENACT_APP_AUTH=user:password); "
                 "needed for a --host beyond loopback"),
]


@project_command
def web_app(
    paths: Paths,
    host: Host = "127.0.0.1",
    port: Port = 7860,
    auth_file: AuthFile = None,
    max_seconds: Annotated[float, typer.Option(help="longest speech an upload may be, in seconds",
                                               callback=finite_positive)] = 300.0,
    max_upload_mb: Annotated[int | None, typer.Option(
        help="most MB the app keeps of uploads at once (default: what a --max-seconds wav needs)", min=1,
    )] = None,
) -> None:
    """The web app: speech -> a signed talking-head video in the browser, live from the microphone (its
    Live tab), and the dataset at a glance. Its renders go to paths.app_renders; uploads and temporary
    files to a folder of its own, removed when it stops. On loopback it is open to this machine's users;
    on any other address it refuses to start without a login (flows/app_guard.py)."""
    _serve(paths, host, port, auth_file, max_seconds, max_upload_mb)


@project_command
def live(
    paths: Paths,
    target: Annotated[str, typer.Option(
        help="whose face speaks: a target adapted by `reenact adapt` or a video id of the corpus "
             "(`reenact targets` lists the adapted ones)")],
    host: Host = "127.0.0.1",
    port: Port = 7860,
    auth_file: AuthFile = None,
) -> None:
    """Speak into the browser's microphone and TARGET speaks with you, live: the app's Live view of that
    target alone, at http://HOST:PORT/. Frames are the target's own footage with its lower face painted
    from the voice, every one watermarked as a render's; when the CPU falls behind, frames are dropped,
    so the mouth keeps time with the voice. The same login rule as `reenact app`."""
    with errors_in_one_line():
        check_name("--target", target)
    _serve(paths, host, port, auth_file, 300.0, None, live_only=target)


def _serve(paths: Paths, host: str, port: int, auth_file: Path | None, max_seconds: float,
           max_upload_mb: int | None, live_only: str | None = None) -> None:
    """`reenact app` and `reenact live`: serve until stopped (flows/serve.py); errors in one line."""
    from flows.app_guard import StartError
    from flows.serve import serve
    from flows.stopping import Stopped, stop_on_signals
    from models.errors import CheckpointError
    from models.rendering.render import RenderError
    from tasks.config.params_loader import ParamsError

    try:
        with errors_in_one_line(RenderError, ParamsError, FileNotFoundError, CheckpointError), \
                stop_on_signals():
            serve(paths, host, port, auth_file, max_seconds, max_upload_mb, say=typer.echo,
                  live_only=live_only)
    except StartError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Stopped as stopped:
        typer.echo(f"reenact {'live' if live_only else 'app'}: {stopped}; its uploads and temporary files "
                   "are removed")
