"""The web app: what it refuses (fast), and the whole thing in a real headless Chromium (slow).

The browser is Debian's `chromium`, driven by Playwright's Python package (its own browser download
needs the internet); the app is `reenact app` in a process of its own, bound to every address (0.0.0.0)
behind a login, and reached on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from helpers import checkout_env, free_port, reenact, reenact_command, stop, wait_for_http
from render_kit import ffmpeg, probe, write_voice

from flows.app import BadUpload, _render_handler, check_speech
from flows.app_guard import AUTH_ENV, LoginError, logins
from flows.app_targets import Targets
from flows.render import fetch_speech
from models.rendering.render import RenderError
from models.training.adapt import adapt_target
from tasks.config.paths import Paths
from tasks.provenance.manifest import verify_mp4
from tasks.provenance.signing import ENV_DIR
from tasks.rows.decode import iter_frames

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_bad_speech_gets_a_message(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("these are notes, not sound\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1", str(tmp_path / "silent_film.mp4"))
    write_voice(tmp_path / "long.wav", 3.0)
    write_voice(tmp_path / "ok.wav", 1.0)
    expected = {
        None: "No speech yet",
        "empty.wav": "is empty",
        "notes.wav": "not an audio file",
        "silent_film.mp4": "has no audio track",
        "long.wav": "renders at most 2 s",
    }
    for name, message in expected.items():
        with pytest.raises(BadUpload, match=message):
            check_speech(str(tmp_path / name) if name else None, max_seconds=2.0)
    assert check_speech(str(tmp_path / "ok.wav"), max_seconds=2.0) == pytest.approx(1.0, abs=0.01)


def test_speech_urls_other_than_http_are_refused(tmp_path):
    for url in ("file:///etc/passwd", "ftp://example.org/speech.wav", "data:audio/wav;base64,AAAA"):
        with pytest.raises(RenderError, match="refused"):
            fetch_speech(url, tmp_path)
    assert fetch_speech("speech.wav", tmp_path) == (Path("speech.wav"), "speech.wav")


LOGIN = ("editor", "s3cret:with colon")


def test_app_refuses_a_bind_beyond_loopback_without_a_login(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTH_ENV, raising=False)
    done = reenact("app", "--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "needs a login" in done.stderr and "--auth-file" in done.stderr and AUTH_ENV in done.stderr

    (tmp_path / "logins.txt").write_text("# who may use the app\n\neditor:s3cret:with colon\n"
                                         "viewer:twelve chars\n")
    assert logins("0.0.0.0", tmp_path / "logins.txt") == [LOGIN, ("viewer", "twelve chars")]
    assert logins("127.0.0.1") is None, "loopback stays open to this machine"
    monkeypatch.setenv(AUTH_ENV, "editor:s3cret:with colon")
    assert logins("192.0.2.7") == [LOGIN]
    (tmp_path / "bad.txt").write_text("just-a-name\n")
    (tmp_path / "weak.txt").write_text("viewer:pw\n")
    for bad, message in ((tmp_path / "bad.txt", "user:password"), (tmp_path / "none.txt", "No such file"),
                         (tmp_path / "weak.txt", "needs at least 12")):
        with pytest.raises(LoginError, match=message):
            logins("0.0.0.0", bad)


@pytest.fixture
def running_app(tmp_path, kit):
    """`reenact app --root` a copy of the kit's project with a metrics report, started from elsewhere."""
    project = Paths.at(shutil.copytree(kit.paths.root, tmp_path / "project"))
    project.metrics.parent.mkdir()
    project.metrics.write_text(json.dumps({"model": {"sync_r": 0.955}}))
    port = free_port()
    env = checkout_env(**{ENV_DIR: str(tmp_path / "keys"), "GRADIO_ANALYTICS_ENABLED": "False",
                          AUTH_ENV: ":".join(LOGIN)})
    log = open(tmp_path / "app.log", "w")  # noqa: SIM115  (the app writes to it until the fixture ends)
    command = reenact_command("app", "--root", str(project.root), "--host", "0.0.0.0", "--port", str(port),
                              "--max-seconds", "10")
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, tmp_path / "app.log", "the app")
        yield url, project
    finally:
        stop(process)
        log.close()


def login_status(url: str, user: str, password: str) -> int:
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "login", data=form), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_bind_beyond_loopback_serves_behind_a_login(running_app):
    url, _project = running_app
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "config", timeout=10)
    assert refused.value.code == 401, "nothing of the app without logging in"
    assert login_status(url, LOGIN[0], "wrong") == 400
    assert login_status(url, *LOGIN) == 200


def log_in(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(LOGIN[0])
    page.get_by_label("password").fill(LOGIN[1])
    page.get_by_role("button", name="Login").click()


def wait_for_status(page, text: str, timeout_s: float = 60) -> str:
    page.wait_for_function(
        "t => document.querySelector('#status').innerText.includes(t)", arg=text, timeout=timeout_s * 1000
    )
    return page.locator("#status").inner_text()


def upload(page, path: Path) -> None:
    page.locator("#speech input[type=file]").set_input_files(str(path))


@pytest.mark.slow
def test_app_renders_an_upload_in_a_real_browser(running_app, tmp_path, kit):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make system-packages)")
    from playwright.sync_api import sync_playwright

    url, _project = running_app
    (tmp_path / "notes.wav").write_text("not sound\n")
    write_voice(tmp_path / "long.wav", 12.0, seed=5)
    write_voice(tmp_path / "speech.wav", 2.5, seed=6)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(page, url)
            page.wait_for_selector("#render")
            bad_uploads = {"notes.wav": "not an audio file", "long.wav": "at most 10 s"}
            for bad, message in bad_uploads.items():
                upload(page, tmp_path / bad)
                page.wait_for_selector("#speech audio[src]", state="attached", timeout=30_000)
                page.locator("#render").click()
                status = wait_for_status(page, message)
                assert "Cannot render" in status and "Traceback" not in page.content()
                page.reload()
                page.wait_for_selector("#render")

            upload(page, tmp_path / "speech.wav")
            page.wait_for_selector("#speech audio[src]", state="attached", timeout=30_000)
            page.get_by_label("Face", exact=True).check()
            page.locator("#render").click()
            page.wait_for_selector("#result video[src]", timeout=180_000)
            status = wait_for_status(page, "signed and intact")
            assert "digital source type\ttrainedAlgorithmicMedia\n" in status and "speech.wav" in status
            assert re.search(r"watermark id \(soft binding\)\t[0-9a-f]{8}", status), status
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            served = page.request.get(page.locator("#result video").get_attribute("src"))
            assert served.ok
            (tmp_path / "served.mp4").write_bytes(served.body())

            page.get_by_role("tab", name="Dataset").click()
            page.wait_for_selector("#inspect")
            assert "synthetic_0" in page.locator("#inspect").inner_text()
            assert "sync_r" in page.locator("#metrics").inner_text()
        finally:
            browser.close()

    verdict = verify_mp4(tmp_path / "served.mp4")
    assert verdict.ok and verdict.synthetic and verdict.facts["speech_name"] == "speech.wav"
    streams = {s["codec_type"]: s["codec_name"] for s in probe(tmp_path / "served.mp4")["streams"]}
    assert streams == {"video": "h264", "audio": "aac"}


def test_the_app_offers_adapted_targets_and_renders_them_with_their_own_generator(footage, tmp_path):
    clip = footage.paths.videos / f"{footage.target}.mp4"
    paths = footage.paths.moved(targets=tmp_path / "targets", renders=tmp_path / "renders")
    params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
        update={"min_seconds": 1.0, "epochs": 1})})
    adapted = adapt_target(clip, "me", paths, params)
    targets = Targets(paths, params)
    corpus = sorted(footage.models.cgan_artifact.lips_stats)
    assert targets.choices() == [(video_id, video_id) for video_id in corpus] + [("me (adapted)", "me")]
    corpus_target = targets(footage.target)
    assert corpus_target.models is targets.models and corpus_target.paths == paths
    assert corpus_target.adapted is None

    write_voice(tmp_path / "speech.wav", 1.0)
    render = _render_handler(targets, max_seconds=10.0)
    out, download, status = render(str(tmp_path / "speech.wav"), "me", "full", progress=lambda *a, **k: None)
    assert out == download and Path(out).parent == paths.app_renders, status
    verdict = verify_mp4(Path(out))
    assert verdict.facts["cgan_sha256"] == hashlib.sha256(adapted.paths.cgan.read_bytes()).hexdigest()
    assert verdict.facts["cgan_sha256"] != hashlib.sha256(footage.paths.cgan.read_bytes()).hexdigest()
    video = next(s for s in probe(Path(out))["streams"] if s["codec_type"] == "video")
    first = next(iter_frames(adapted.video, 30.0))
    assert (video["width"], video["height"]) == first.shape[1::-1], "the adapted target's own footage"
    assert targets("me") is targets("me"), "loaded once"

    # A project with adapted targets only (no corpus models of its own) offers them, `me` first.
    none = tmp_path / "none"
    alone = Targets(paths.moved(lstm=none / "lstm.pt", cgan=none / "cgan.pt"), params)
    assert alone.models is None and alone.choices() == [("me (adapted)", "me")] and alone.default() == "me"
    assert alone("me").adapted is not None
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        alone(footage.target)
