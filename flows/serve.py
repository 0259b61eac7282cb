"""`reenact app`'s process: its arguments checked before anything is loaded, a folder of its own for
every upload and temporary file, the guard in front of Gradio (flows/app_guard.py), and a stop that
leaves nothing of that folder behind.

The folder (`own_folder`, `reenact-app-*` in the system's temporary folder) holds Gradio's uploads and
cache (GRADIO_TEMP_DIR, set before gradio is imported), the target thumbnails and each render's scratch
(tempfile's default folder in this process). An upload is removed after its render (flows/app.py); the
folder and all it holds when the app stops, by Ctrl-C, SIGTERM or SIGHUP as well (flows/stopping.py).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flows.app_guard import Budget, Guard, StartError, logins
from models.errors import RenderError
from tasks.config.paths import Paths

# The largest wav of one second an upload or a browser's recording holds: 48 kHz, 16-bit, stereo.
WAV_BYTES_PER_SECOND = 48_000 * 2 * 2


def default_upload_mb(max_seconds: float) -> int:
    """What a wav of `max_seconds` needs, in MB, with 1 MB for the form around it: 59 for 300 s."""
    return math.ceil(max_seconds * WAV_BYTES_PER_SECOND / 1e6) + 1


def check_listen(host: str, port: int) -> None:
    """StartError naming --host or --port unless this process may listen there now."""
    if not host.strip():
        raise StartError("--host '': give an address to listen on (127.0.0.1, or 0.0.0.0 for every one)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise StartError(f"--host {host!r}: not an address to listen on ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartError(f"--port {port}: already in use on {host}") from None
            raise StartError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None


@contextlib.contextmanager
def own_folder() -> Iterator[Path]:
    """A new `reenact-app-*` folder that every temporary file of this process goes to (GRADIO_TEMP_DIR
    for Gradio's uploads and cache, tempfile's default for the rest) while the block runs; removed,
    with all it holds, when it ends."""
    folder = Path(tempfile.mkdtemp(prefix="reenact-app-"))
    before = os.environ.get("GRADIO_TEMP_DIR"), tempfile.tempdir
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "uploads")
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = before[1]
        if before[0] is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before[0]
        shutil.rmtree(folder, ignore_errors=True)


class Stop:
    """How the app's process stops it: `stop(app)` asks the render in flight to end at its next progress
    report (flows/app.py: its files are removed as for any error), waits for it, then closes the server."""

    def __init__(self):
        self.asked, self.rendering = threading.Event(), threading.Lock()

    def check(self) -> None:
        if self.asked.is_set():
            raise RenderError("the app is stopping")

    def __call__(self, app: Any, wait_s: float = 60.0) -> None:
        self.asked.set()
        if self.rendering.acquire(timeout=wait_s):
            self.rendering.release()
        app.close()


def discard_upload(path: str | None, uploads: Path) -> None:
    """Remove the upload `path` (a file in Gradio's upload folder `uploads`) and its folder when that is
    left empty; any other path is left alone."""
    folder = uploads.resolve()
    file = Path(path).resolve() if path else folder
    if file != folder and file.is_relative_to(folder):
        file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            if file.parent != folder:
                file.parent.rmdir()


def serve(paths: Paths, host: str, port: int, auth_file: Path | None, max_seconds: float,
          max_upload_mb: int | None, say: Callable[[str], None], live_only: str | None = None) -> None:
    """Serve the app of the project at `paths` until stopped (`live_only`: the Live view of that target
    alone, `reenact live`). StartError (one line) for a bad argument, before anything loads; what
    create_app raises for a bad project."""
    auth = logins(host, auth_file)
    check_listen(host, port)
    limit = (max_upload_mb or default_upload_mb(max_seconds)) * 1_000_000
    with own_folder() as folder:
        from starlette.middleware import Middleware

        from flows import app as web  # gradio is imported here, once GRADIO_TEMP_DIR is set

        stop = Stop()
        blocks = web.create_app(paths, max_seconds, stop, live_only)
        budget = Budget(folder, limit)
        guard = Middleware(Guard, login=auth is not None, budget=budget, message=web.AUTH_MESSAGE)
        shown = f"[{host}]" if ":" in host else host
        login = " (login required)" if auth else ""
        say(f"reenact {'live' if live_only else 'app'} on http://{shown}:{port}/{login} (Ctrl-C stops it)")
        try:
            web.launch(blocks, paths, host, port, auth, guard=guard, max_file_bytes=limit)
        except OSError as exc:  # the port taken between the check and the server's start
            raise StartError(f"--host {host} --port {port}: cannot listen there ({exc})") from None
        finally:
            stop(blocks)
