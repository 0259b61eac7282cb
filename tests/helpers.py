"""Helpers the tests share: the one way to run the `reenact` command, landmark geometry, a copy of the
project's data stages to run DVC in, local servers and processes."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

import numpy as np

from tasks.rows.landmarks import LEFT_EYE, RIGHT_EYE
from tasks.table.synthetic import synthetic_shards  # noqa: F401  (the tests' synthetic corpus)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment for a command run anywhere on this checkout's code (first on PYTHONPATH),
    with `extra` set."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def reenact_command(*args: str) -> list[str]:
    """`reenact ARGS` as a user types it: the console script of this environment."""
    return [str(BIN / "reenact"), *args]


def reenact(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `reenact ARGS` in `cwd` to its end, as a user would; its output is captured as text."""
    return subprocess.run(
        reenact_command(*args),
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def reenact_here(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`reenact ARGS` run in this process by click's test runner, in `cwd` with `env` set: its exit status,
    stdout and stderr, as `reenact` gives them (an exception it lets out: its traceback on stderr).
    For the checks around a test's real runs: a second interpreter's start (torch, Prefect: ~5 s on
    2 cores) adds nothing to what they assert."""
    from typer.testing import CliRunner

    from flows.cli import app

    previous = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, list(args), env=env)
    finally:
        os.chdir(previous)
    stderr = done.stderr
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        stderr += "".join(traceback.format_exception(done.exception))
    return subprocess.CompletedProcess(["reenact", *args], done.exit_code, done.stdout, stderr)


def dvc_project_copy(repo: Path, extra: tuple[str, ...] = ()) -> Path:
    """The project's data stages and their code in a folder of their own (no .venv: bin/python takes
    the active one), with a demo corpus of 2 clips of 2 s; `extra`: more of the project to copy."""
    names = ("dvc.yaml", "params.yaml", "bin", "flows", "tasks", "data/sources", ".dvc/config", ".dvcignore")
    for name in (*names, ".gitignore", *extra):
        src = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = (repo / "params.yaml").read_text()
    params = params.replace("clips: 6", "clips: 2").replace("seconds: 10.0", "seconds: 2.0")
    (repo / "params.yaml").write_text(params)
    return repo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process, log: Path, what: str, timeout: float = 120) -> None:
    """Until `url` answers 200; fails with the log when `process` dies or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start in {timeout:.0f} s"
        time.sleep(0.5)


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres of 68 landmarks: the scale landmark errors are measured against."""
    return float(np.linalg.norm(landmarks[LEFT_EYE].mean(0) - landmarks[RIGHT_EYE].mean(0)))


class LogLines(logging.Handler):
    """Every record as a handler prints it: the message, and the traceback when it carries one."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._records: dict[int, logging.LogRecord] = {}  # held, so that their ids stay unique

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) not in self._records:  # once, whether it came through `prefect` or the root
            self._records[id(record)] = record
            self.lines.append(self.format(record))


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
