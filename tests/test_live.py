"""`reenact live` in a real headless Chromium whose microphone is a speech file: the Live view behind the
app's login receives frames whose mouth opens with the speech (flows/live.py, flows/live.js)."""

from __future__ import annotations

import asyncio
import subprocess
import time

import numpy as np
import pytest
import soundfile
import websockets
from helpers import checkout_env, free_port, reenact, reenact_command, stop, wait_for_http
from render_kit import SR, voice
from test_app import CHROMIUM, CHROMIUM_ARGS, LOGIN, log_in

from flows.app_guard import AUTH_ENV
from tasks.provenance.signing import ENV_DIR


def pauses(seconds: float = 6.0) -> np.ndarray:
    """A voice speaking for 1 s, silent for 1 s, and so on: the mouth should open and close with it."""
    t = np.arange(round(seconds * 30)) / 30
    return voice(seconds, seed=4, envelope=(np.floor(t) % 2 == 0) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.5 * t)))


@pytest.fixture
def live_server(tmp_path, footage):
    """`reenact live --target` the footage project's target, beyond loopback behind a login."""
    port = free_port()
    env = checkout_env(**{ENV_DIR: str(tmp_path / "keys"), "GRADIO_ANALYTICS_ENABLED": "False",
                          AUTH_ENV: ":".join(LOGIN)})
    log = open(tmp_path / "live.log", "w")  # noqa: SIM115  (the server writes to it until the fixture ends)
    command = reenact_command("live", "--root", str(footage.paths.root), "--target", footage.target,
                              "--host", "0.0.0.0", "--port", str(port))
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, tmp_path / "live.log", "reenact live")
        yield url
    finally:
        stop(process)
        log.close()


def test_live_refuses_a_target_that_is_not_one(tmp_path, footage):
    done = reenact("live", "--root", str(footage.paths.root), "--target", "../etc", cwd=tmp_path)
    assert done.returncode == 2 and "--target '../etc'" in done.stderr and "Traceback" not in done.stderr
    done = reenact("live", "--root", str(footage.paths.root), "--target", "nobody", "--port",
                   str(free_port()), cwd=tmp_path)
    assert done.returncode == 1 and "nobody" in done.stderr and len(done.stderr.strip().splitlines()) == 1


async def socket_refused(url: str) -> bool:
    try:
        async with websockets.connect(url.replace("http", "ws") + "live/socket", open_timeout=10) as socket:
            await asyncio.wait_for(socket.recv(), 10)
    except (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed):
        return True
    return False


@pytest.mark.slow
def test_the_live_view_speaks_with_a_fake_microphone_in_chromium(live_server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make system-packages)")
    from playwright.sync_api import sync_playwright

    assert asyncio.run(socket_refused(live_server)), "no live stream without a login"
    soundfile.write(tmp_path / "speech.wav", pauses(), SR, subtype="PCM_16")
    microphone = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  f"--use-file-for-fake-audio-capture={tmp_path / 'speech.wav'}",
                  "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + microphone)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            log_in(page, live_server)
            page.wait_for_selector("#live-start")
            page.locator("#live-start").click()
            page.wait_for_function("() => (window.reenactLive.frames || []).length >= 1", timeout=60_000)
            started = time.monotonic()
            # 8 s of speech and pauses, however many frames the CPU paints meanwhile (the rest are dropped)
            page.wait_for_function("() => window.reenactLive.frames.at(-1).time >= 8", timeout=60_000)
            elapsed = time.monotonic() - started
            frames = page.evaluate("window.reenactLive.frames")
            speech = page.evaluate("window.reenactLive.speech")
            dropped = page.evaluate("window.reenactLive.stats ? window.reenactLive.stats.dropped : 0")
            status = page.locator("#live-status").inner_text()
            page.screenshot(path=str(tmp_path / "live.png"))
            page.locator("#live-stop").click()
        finally:
            browser.close()
    latency = np.array([f["latency"] for f in frames], float)
    print(f"live in Chromium: {len(frames)} frames in {elapsed:.1f} s, {dropped} dropped by the server, "
          f"latency p50 {np.nanpercentile(latency, 50):.0f} ms p95 {np.nanpercentile(latency, 95):.0f} ms")
    assert len(frames) / elapsed >= 2, f"{len(frames)} frames in {elapsed:.1f} s"
    assert "Live on" in status and "latency" in status, status
    times = np.array([f["time"] for f in frames])
    assert (np.diff(times) > 0).all(), "frames in order, each once"
    # the speech the server heard, per frame: loud or silent
    heard = np.array([[s["time"], s["rms"]] for s in speech])
    loud = np.interp(times, heard[:, 0], heard[:, 1]) > 0.02
    opening = np.array([f["opening"] for f in frames])
    assert loud.sum() >= 5 and (~loud).sum() >= 5, "the fake microphone's speech and pauses came through"
    assert opening[loud].mean() > opening[~loud].mean() + 0.25 * opening.std(), "the mouth opens as it speaks"
