"""What stands between the network and the web app (flows/app.py): its logins, and `Guard`, the ASGI
layer in front of Gradio's routes.

Gradio's own login leaves its page open: `GET /` answers before any login with the page's API schema,
which names every choice of every dropdown (every target, adapted people included); wrong passwords are
never slowed. So, with a login:

- before a login, `/` is the small page of `LOGIN_PAGE` (no Gradio, no schema, no names), `POST /login`
  goes to Gradio's check, and every other path answers 401;
- wrong logins are counted per client address (`Throttle`): after `WRONG_LOGINS` wrong tries, that
  client's next tries are refused (429) for `BLOCKED_SECONDS`, right password or not;
- a password has at least `MIN_PASSWORD` characters (`logins` refuses shorter ones at start).

With a login or without (loopback), what request bodies may leave on disk is bounded (`Budget`): the
app's folder (flows/serve.py) plus the bodies on their way in stays under `--max-upload-mb`.
No gradio import here: `reenact app` reads its logins before gradio is loaded.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, PlainTextResponse

LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "REENACT_APP_AUTH"
MIN_PASSWORD = 12
WRONG_LOGINS = 5
BLOCKED_SECONDS = 60.0
SMALL_BODY = 64 << 10  # a login, a queue request: not counted against the budget (an upload always is)
UPLOADS = ("/upload", "/process_recording")  # the routes that keep what they are sent


class StartError(ValueError):
    """The app may not start: a bad argument, said in one line (flows/cli.py: exit 2)."""


class LoginError(StartError):
    """A bind beyond loopback without a login, an unreadable login file, a login too weak."""


def _pair(line: str, where: str) -> tuple[str, str]:
    user, sep, password = line.partition(":")
    if not sep or not user.strip() or not password:
        raise LoginError(f"{where}: a login is `user:password`, got {line[:40]!r}")
    if len(password) < MIN_PASSWORD:
        raise LoginError(f"{where}: the password of {user.strip()!r} has {len(password)} characters; "
                         f"a login's password needs at least {MIN_PASSWORD}")
    return user.strip(), password


def logins(host: str, auth_file: Path | None = None) -> list[tuple[str, str]] | None:
    """The (user, password) pairs the app asks for: from `auth_file` (one `user:password` a line;
    blank lines and # comments skipped), else $REENACT_APP_AUTH (`user:password`); None on loopback
    without either. Beyond loopback without either: LoginError saying how to give one."""
    if auth_file is not None:
        try:
            lines = Path(auth_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LoginError(f"{auth_file}: {getattr(exc, 'strerror', None) or 'not a text file'}") from None
        pairs = [_pair(line, str(auth_file)) for line in lines if line.strip() and not line.startswith("#")]
        if not pairs:
            raise LoginError(f"{auth_file}: no `user:password` line")
        return pairs
    if os.environ.get(AUTH_ENV):
        return [_pair(os.environ[AUTH_ENV], AUTH_ENV)]
    if host in LOOPBACK:
        return None
    raise LoginError(
        f"--host {host} serves the app beyond this machine, so it needs a login: "
        f"--auth-file FILE (lines `user:password`) or {AUTH_ENV}=user:password"
    )


class Throttle:
    """Wrong logins per client. A try counts as wrong from when it arrives until it succeeds, so tries
    sent at once cannot slip past the count; the `tries`-th wrong one within `seconds` shuts the client
    out for `seconds`; a right one clears its count."""

    def __init__(self, tries: int = WRONG_LOGINS, seconds: float = BLOCKED_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.tries, self.seconds, self.clock = tries, seconds, clock
        self.wrong: dict[str, list[float]] = {}
        self.until: dict[str, float] = {}

    def wait(self, client: str) -> float:
        """Seconds before `client` may try again (0: now)."""
        return max(0.0, self.until.get(client, 0.0) - self.clock())

    def attempt(self, client: str) -> None:
        now = self.clock()
        if len(self.wrong) > 10_000:  # forget the clients that are neither counted nor shut out
            self.wrong = {c: t for c, t in self.wrong.items() if t and now - t[-1] < self.seconds}
            self.until = {c: t for c, t in self.until.items() if t > now}
        recent = [t for t in self.wrong.get(client, []) if now - t < self.seconds] + [now]
        if len(recent) >= self.tries:
            self.until[client], recent = now + self.seconds, []
        self.wrong[client] = recent

    def succeeded(self, client: str) -> None:
        self.wrong.pop(client, None)
        self.until.pop(client, None)


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder`, as they are now."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


class Budget:
    """At most `limit` bytes in `folder` (the app's own, flows/serve.py) at once, counting the request
    bodies on their way in (`reserve`d until their request ends, by when they are in the folder)."""

    def __init__(self, folder: Path, limit: int):
        self.folder, self.limit, self.reserved = Path(folder), limit, 0

    def reserve(self, size: int) -> int | None:
        """Reserve `size` bytes; None when they do not fit, else the bytes held now (for the message)."""
        held = folder_bytes(self.folder) + self.reserved
        if held + size > self.limit:
            return None
        self.reserved += size
        return held

    def release(self, size: int) -> None:
        self.reserved -= size


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reenact: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;box-sizing:border-box;margin:.3rem 0}}
input,button{{padding:.5rem;font-size:1rem}}</style></head>
<body><h1>reenact</h1><p>{message}</p>
<form id="login"><label for="username">username</label>
<input id="username" name="username" autocomplete="username" required>
<label for="password">password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Login</button><p id="said" role="alert"></p></form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const form = new URLSearchParams(new FormData(event.target));
  const sent = await fetch("login", {{method: "POST", body: form}});
  if (sent.ok) {{ location.reload(); return; }}
  document.getElementById("said").textContent =
    sent.status === 429 ? await sent.text() : "Wrong user or password.";
}});
</script></body></html>
"""


class Guard:
    """The ASGI layer before Gradio's routes (passed to Gradio's FastAPI app as middleware, so that
    `scope["app"]` is that app and holds its sessions: `tokens`, `cookie_id`). `login`: the app asks for
    one (see the module's docstring)."""

    def __init__(self, app, *, login: bool, budget: Budget, message: str = "",
                 throttle: Throttle | None = None):
        self.app, self.login, self.budget = app, login, budget
        self.page = LOGIN_PAGE.format(message=html.escape(message))
        self.throttle = throttle or Throttle()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path, method = scope["path"].rstrip("/") or "/", scope.get("method", "GET")
        if self.login and path == "/login" and method == "POST":
            return await self._log_in(scope, receive, send)
        if self.login and not self._logged_in(scope):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            if path == "/" and method in ("GET", "HEAD"):
                return await HTMLResponse(self.page)(scope, receive, send)
            if path == "/gradio_api/startup-events" and self._client(scope) in LOOPBACK:
                return await self.app(scope, receive, send)  # Gradio's launch starts its queue so
            return await PlainTextResponse("log in first", 401)(scope, receive, send)
        return await self._bounded(scope, receive, send)

    @staticmethod
    def _client(scope) -> str:
        return (scope.get("client") or ("unknown",))[0]

    @staticmethod
    def _logged_in(scope) -> bool:
        gradio = scope.get("app")
        cookies = HTTPConnection(scope).cookies  # a request or a WebSocket (the Live view, flows/live.py)
        names = (f"access-token-{gradio.cookie_id}", f"access-token-unsecure-{gradio.cookie_id}")
        return any(cookies.get(name) in gradio.tokens for name in names if cookies.get(name))

    async def _log_in(self, scope, receive, send) -> None:
        client = self._client(scope)
        wait = self.throttle.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            said = f"Too many wrong logins from {client}: try again in {seconds} s."
            return await PlainTextResponse(said, 429, headers={"Retry-After": str(seconds)})(
                scope, receive, send)
        self.throttle.attempt(client)
        status: list[int] = []

        async def watched(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watched)
        if status == [200]:
            self.throttle.succeeded(client)

    async def _bounded(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers") or [])
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            return await PlainTextResponse("send a Content-Length", 411)(scope, receive, send)
        try:
            size = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await PlainTextResponse("a bad Content-Length", 400)(scope, receive, send)
        if size <= SMALL_BODY and not scope["path"].rstrip("/").endswith(UPLOADS):
            return await self.app(scope, receive, send)
        held = self.budget.reserve(size)
        if held is None:
            said = (f"This app keeps at most {self.budget.limit / 1e6:.0f} MB of uploads at once "
                    f"(--max-upload-mb) and {size / 1e6:.1f} MB more do not fit now; each upload is "
                    "removed after its render.")
            return await PlainTextResponse(said, 413)(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(size)
