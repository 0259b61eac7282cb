"""The web app as a careless or hostile user meets it, against a real `reenact app` process on 127.0.0.1
(flows/app_guard.py, flows/serve.py): nothing of the app before a login, wrong logins shut out per
client, weak passwords and bad ports refused at start in one line, uploads bounded and removed after
their render, and nothing left in the temporary folder once the app stops."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import checkout_env, free_port, reenact, reenact_command, stop, wait_for_http
from render_kit import write_voice

from flows.app_guard import AUTH_ENV, MIN_PASSWORD, Throttle
from tasks.config.paths import TARGET_RECORD, Paths
from tasks.provenance.signing import ENV_DIR
from tasks.table.shards import part_files

LOGIN = ("editor", "a long enough secret")
ADAPTED = "alice_adapted"  # a person's name that must not show before a login


@dataclass
class Served:
    url: str
    port: int
    project: Paths
    temp: Path  # the app's TMPDIR: its own folder goes there
    process: subprocess.Popen
    log: Path


def fake_adapted_target(project: Paths, name: str) -> None:
    """A complete adapted target made of the corpus's own files (a listing is all it is here for)."""
    folder = project.target_dir(name)
    mine = project.in_target(folder)
    video = min(project.shards.glob("video_id=*")).name.removeprefix("video_id=")
    (mine.shards / f"video_id={name}").mkdir(parents=True)
    shutil.copy(part_files(project.shards, video)[0], mine.shards / f"video_id={name}" / "part-0000.parquet")
    mine.videos.mkdir(parents=True)
    shutil.copy(project.videos / f"{video}.mp4", mine.videos / f"{name}.mp4")
    shutil.copy(project.cgan, mine.cgan)
    record = {"name": name, "source": "/clips/alice.mp4", "sha256": "0" * 64, "frames": 120,
              "frames_with_face": 120, "train_frames": 120, "steps": 1, "preprocess_seconds": 1.0,
              "finetune_seconds": 1.0, "adapt_seconds": 2.0, "created": "2025-01-01T00:00:00+00:00"}
    (folder / TARGET_RECORD).write_text(json.dumps(record))


def start_app(kit, folder: Path, *options: str, auth: str | None = None) -> Served:
    project = Paths.at(shutil.copytree(kit.paths.root, folder / "project"))
    fake_adapted_target(project, ADAPTED)
    temp = folder / "tmp"
    temp.mkdir()
    port = free_port()
    env = checkout_env(**{ENV_DIR: str(folder / "keys"), "TMPDIR": str(temp)})
    env.pop(AUTH_ENV, None)
    if auth:
        env[AUTH_ENV] = auth
    log = folder / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            reenact_command("app", "--root", str(project.root), "--port", str(port), *options),
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}/", port, project, temp, process, log)
    try:
        wait_for_http(served.url, process, log, "the app")
    except BaseException:
        stop(process)
        raise
    return served


@pytest.fixture(scope="module")
def guarded(kit, tmp_path_factory):
    """One app behind a login, bound to every address, that keeps at most 1 MB of uploads."""
    served = start_app(kit, tmp_path_factory.mktemp("guarded"), "--host", "0.0.0.0", "--max-seconds", "10",
                       "--max-upload-mb", "1", auth=":".join(LOGIN))
    yield served
    stop(served.process)


def ask(served: Served, path: str, *, method: str = "GET", body: bytes | None = None,
        headers: dict | None = None, source: str = "127.0.0.1") -> tuple[int, list, str]:
    """(status, [(header, value)] with the names in lower case, text) of one request to the app from
    the loopback address `source`."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60, source_address=(source, 0))
    try:
        connection.request(method, "/" + path, body=body, headers=headers or {})
        response = connection.getresponse()
        said = [(name.lower(), value) for name, value in response.getheaders()]
        return response.status, said, response.read().decode(errors="replace")
    finally:
        connection.close()


def log_in(served: Served, user: str, password: str, source: str = "127.0.0.1") -> tuple[int, str]:
    """(status, the session's Cookie header) of a login."""
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    status, headers, _ = ask(served, "login", method="POST", body=form, source=source,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    cookies = [value.split(";")[0] for name, value in headers if name == "set-cookie"]
    return status, "; ".join(cookies)


def multipart(path: Path) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n")
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(served: Served, path: Path, cookie: str = "") -> tuple[int, str]:
    body, headers = multipart(path)
    status, _, text = ask(served, "gradio_api/upload", method="POST", body=body,
                          headers={**headers, **({"Cookie": cookie} if cookie else {})})
    return status, text


def wav(path: Path, seconds: float, seed: int = 0) -> Path:
    """A 48 kHz stereo 16-bit wav (192 kB a second) of a buzzing voice."""
    t = np.arange(round(seconds * 48_000)) / 48_000
    sound = 0.2 * np.sin(2 * np.pi * (120 + seed) * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    soundfile.write(path, np.stack([sound, sound], 1), 48_000, subtype="PCM_16")
    return path


def start_render(served: Served, upload: str, cookie: str = "") -> str:
    """Ask the app, through its API as the page does, to render an upload on synthetic_0's face; the
    event's id, whose stream says how it went."""
    data = [{"path": upload, "meta": {"_type": "gradio.FileData"}}, "synthetic_0", "face"]
    headers = {"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})}
    status, _, text = ask(served, "gradio_api/call/render", method="POST", headers=headers,
                          body=json.dumps({"data": data}).encode())
    assert status == 200, text
    return json.loads(text)["event_id"]


def test_nothing_of_the_app_is_served_before_a_login(guarded):
    paths = ["", "config", "gradio_api/info", "gradio_api/openapi.json", "info", "theme.css", "manifest.json",
             "gradio_api/queue/data", "gradio_api/upload_progress", "assets/index.js", "static/img/logo.svg",
             f"gradio_api/file={guarded.project.params}", "user", "gradio_api/token", "?view=api"]
    for path in paths:
        status, _, text = ask(guarded, path)
        assert status == (200 if path in ("", "?view=api") else 401), (path, status)
        for secret in ("synthetic_0", ADAPTED, "named_endpoints", "api_info", "lips_stats"):
            assert secret not in text, (path, secret)
    status, _, page = ask(guarded, "")
    assert 'name="password"' in page and "gradio" not in page.lower(), "a login page of its own"
    assert ask(guarded, "gradio_api/upload", method="POST", body=b"x" * 100)[0] == 401

    status, cookie = log_in(guarded, *LOGIN)
    assert status == 200 and cookie
    status, _, config = ask(guarded, "config", headers={"Cookie": cookie})
    assert status == 200 and f"{ADAPTED} (adapted)" in config and "synthetic_0" in config, "after a login"
    status, _, page = ask(guarded, "", headers={"Cookie": cookie})
    assert status == 200 and ADAPTED in page, "Gradio's own page, once logged in"


def test_wrong_logins_shut_their_client_out_for_a_minute(guarded):
    hostile, other = "127.0.0.3", "127.0.0.4"
    started = time.monotonic()
    assert [log_in(guarded, LOGIN[0], f"wrong password {i}", hostile)[0] for i in range(5)] == [400] * 5
    status, headers, said = ask(guarded, "login", method="POST", source=hostile,
                                body=urllib.parse.urlencode(dict(zip(("username", "password"), LOGIN,
                                                                     strict=True))).encode(),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 429 and "Too many wrong logins" in said, "even the right password, for a minute"
    assert 55 <= int(dict(headers)["retry-after"]) <= 60 and time.monotonic() - started < 5
    assert log_in(guarded, *LOGIN, source=other)[0] == 200, "another client is not shut out"


def test_the_throttle_counts_tries_in_flight_and_forgets_after_its_minute():
    now = [0.0]
    throttle = Throttle(tries=5, seconds=60, clock=lambda: now[0])
    for _ in range(5):  # five tries arrive at once: each counts as wrong until it succeeds
        assert throttle.wait("a") == 0
        throttle.attempt("a")
    assert throttle.wait("a") == 60 and throttle.wait("b") == 0
    now[0] = 59.5
    assert throttle.wait("a") == pytest.approx(0.5)
    now[0] = 60.0
    assert throttle.wait("a") == 0
    throttle.attempt("a")
    throttle.succeeded("a")
    assert throttle.wait("a") == 0 and "a" not in throttle.wrong


def test_uploads_are_bounded_and_each_is_removed_after_its_render(guarded, tmp_path):
    _, cookie = log_in(guarded, *LOGIN)
    (folder,) = guarded.temp.glob("reenact-app-*")
    first, second = wav(tmp_path / "first.wav", 3.0), wav(tmp_path / "second.wav", 3.0, seed=7)
    status, text = upload(guarded, first, cookie)
    assert status == 200, text
    (kept,) = json.loads(text)
    assert Path(kept).is_relative_to(folder / "uploads") and Path(kept).stat().st_size == first.stat().st_size
    status, text = upload(guarded, second, cookie)
    assert status == 413 and "at most 1 MB of uploads at once" in text, "the budget is full"

    status, _, stream = ask(guarded, f"gradio_api/call/render/{start_render(guarded, kept, cookie)}",
                            headers={"Cookie": cookie})
    assert "event: complete" in stream and "signed and intact" in stream, stream[-2000:]
    assert not Path(kept).exists(), "the upload is removed once rendered"
    assert list(guarded.project.app_renders.glob("first_synthetic_0_face_*.mp4")), "the render is kept"
    assert upload(guarded, second, cookie)[0] == 200, "room again"
    small = [upload(guarded, wav(tmp_path / f"small_{n}.wav", 0.2, seed=n), cookie)[0] for n in range(20)]
    assert 5 < small.index(413) < 15 and set(small[small.index(413):]) == {413}, "small ones count too"


def test_an_app_stopped_while_it_renders_leaves_nothing_behind(kit, tmp_path):
    """On loopback anyone on the machine may upload, and no login protects the disk: uploads beyond the
    budget are refused. Stopped while it renders, the app ends the render (its hidden mp4 removed) and
    removes its folder."""
    served = start_app(kit, tmp_path, "--max-seconds", "30", "--max-upload-mb", "2")
    try:
        (folder,) = served.temp.glob("reenact-app-*")
        speech = write_voice(tmp_path / "speech.wav", 20.0)  # 0.64 MB, then 0.77 MB a wav
        status, text = upload(served, speech)
        sent = [upload(served, wav(tmp_path / f"{n}.wav", 4.0, seed=n))[0] for n in range(2)]
        assert (status, sent) == (200, [200, 413]), "2.18 MB do not fit in 2"
        assert len(list(folder.rglob("*.wav"))) == 2
        start_render(served, json.loads(text)[0])
        renders, deadline = served.project.app_renders, time.monotonic() + 60
        while not list(renders.glob(".*.tmp.mp4")):
            assert time.monotonic() < deadline, served.log.read_text()
            time.sleep(0.02)
        os.killpg(served.process.pid, signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0
    finally:
        stop(served.process)
    assert list(served.temp.iterdir()) == [], "no reenact-app-* folder, no upload, no thumbnail left"
    assert list(renders.iterdir()) == [], "the render was ended, and its half-encoded mp4 removed"
    assert "stopped by SIGTERM" in served.log.read_text()


@pytest.mark.parametrize(("login", "user", "length"), [("a:b", "a", 1), ("editor:elevenchars", "editor", 11)])
def test_a_weak_login_is_refused_at_start_in_one_line(tmp_path, login, user, length):
    """(Bad ports, hosts and limits: tests/test_cli_walk.py.)"""
    said = (f"the password of {user!r} has {length} characters; "
            f"a login's password needs at least {MIN_PASSWORD}")
    done = subprocess.run(reenact_command("app", "--root", str(tmp_path), "--host", "0.0.0.0"), cwd=tmp_path,
                          env=checkout_env(**{AUTH_ENV: login}), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and done.stderr == f"error: {AUTH_ENV}: {said}\n"


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = reenact("app", "--root", str(tmp_path), "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == f"error: --port {port}: already in use on 127.0.0.1\n"


def test_the_guarded_app_stopped_by_sigint_leaves_nothing_behind(guarded):
    """Ctrl-C: the last test of this module, as it ends the module's app."""
    assert list(guarded.temp.glob("reenact-app-*/uploads/*/*.wav")), "it holds an upload"
    os.killpg(guarded.process.pid, signal.SIGINT)
    assert guarded.process.wait(timeout=60) == 0
    assert list(guarded.temp.iterdir()) == []
    assert "stopped by SIGINT" in guarded.log.read_text()
