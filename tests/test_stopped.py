"""A signal ends a command as an error does (flows/stopping.py): `reenact render` stopped while it encodes
leaves nothing behind but what was there before: no hidden `.NAME.*.tmp.mp4` beside the output, no
`reenact-render-*` or `reenact-speech-*` folder in the temporary folder, no ffmpeg still running."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from helpers import checkout_env, reenact_command
from render_kit import write_voice

from tasks.provenance.signing import ENV_DIR


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_while_encoding_leaves_only_what_was_there(kit, tmp_path):
    """The render's process alone is signalled, as `kill PID` does: it must end its ffmpeg itself."""
    out, temp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    temp.mkdir()
    (out / "earlier.mp4").write_bytes(b"a render from before")
    speech = write_voice(tmp_path / "speech.wav", 20.0)
    env = checkout_env(**{ENV_DIR: str(tmp_path / "keys"), "TMPDIR": str(temp)})
    process = subprocess.Popen(
        reenact_command("render", "--audio", str(speech), "--out", str(out / "killed.mp4"),
                        "--root", str(kit.paths.root)),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".killed.*.tmp.mp4")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the render never started encoding"
            time.sleep(0.02)
        assert list(temp.glob("reenact-render-*")), "its scratch folder is there while it runs"
        os.kill(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert stderr.strip().splitlines()[-1] == "error: stopped by SIGTERM; what it was writing is removed"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["earlier.mp4"], "no hidden half-encoded mp4"
    assert (out / "earlier.mp4").read_bytes() == b"a render from before"
    assert list(temp.iterdir()) == [], "no reenact-render-* or reenact-speech-* folder"
    time.sleep(0.5)
    assert not group_alive(process.pid), "no ffmpeg left running"
