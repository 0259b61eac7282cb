"""Helpers the tests share (and benchmarks/train.py): a synthetic corpus, landmark geometry, a copy
of the project's data stages to run DVC in."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import simplejpeg

from tasks.features import feature_dim
from tasks.landmarks import LEFT_EYE, RIGHT_EYE
from tasks.params import PreprocessParams
from tasks.shards import CROP_DIM, LANDMARKS_DIM, LIPS_DIM, ShardWriter

ROOT = Path(__file__).resolve().parents[1]


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


def synthetic_shards(
    shards: str | Path,
    videos: int = 3,
    frames: int = 200,
    seed: int = 0,
    params: PreprocessParams | None = None,
) -> Path:
    """A small corpus in the frame-table format, for tests and benchmarks where no real one exists.

    A smooth random "loudness" per video drives the lips (mouth opening and width) and the
    audio features (a fixed random mix of it and its neighbours, plus noise); each face is a
    128x128 JPEG of a head whose dark mouth follows the lips. Every 25th frame has no face.
    """
    params = params or PreprocessParams()
    size = params.face_size
    rng = np.random.default_rng(seed)
    dim = feature_dim(params)
    mix = rng.normal(size=(5, dim)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size
    closed = np.array(
        [
            [0.35, 0.72],
            [0.44, 0.69],
            [0.56, 0.69],
            [0.65, 0.72],
            [0.56, 0.76],
            [0.44, 0.76],
            [0.5, 0.71],
            [0.5, 0.73],
        ],
        np.float32,
    )
    for index in range(videos):
        t = np.arange(frames) / params.fps
        phases = rng.uniform(0, 2 * np.pi, 3)
        drive = (
            np.sin(2 * np.pi * 2.1 * t + phases[0])
            + 0.6 * np.sin(2 * np.pi * 3.7 * t + phases[1])
            + 0.3 * np.sin(2 * np.pi * 0.7 * t + phases[2])
        )
        drive = ((drive - drive.min()) / (np.ptp(drive) + 1e-9)).astype(np.float32)
        shifted = np.stack([np.roll(drive, s) for s in (-2, -1, 0, 1, 2)], axis=1)
        audio = shifted @ mix + 0.05 * rng.normal(size=(frames, dim)).astype(np.float32)
        tone = rng.uniform(0.6, 0.9)
        with ShardWriter(shards, f"synthetic_{index}", params, sha256=f"synthetic-{seed}-{index}") as writer:
            for i in range(frames):
                face_found = i % 25 != 24
                lips = closed.copy()
                lips[[4, 5, 7], 1] += 0.12 * drive[i]  # lower lip drops as the mouth opens
                lips[[0, 3], 0] += np.array([-1, 1]) * 0.03 * drive[i]
                head = ((xx - 0.5) / 0.38) ** 2 + ((yy - 0.5) / 0.48) ** 2 < 1
                centre, half_height = (lips[6, 1] + lips[7, 1]) / 2, 0.01 + (lips[7, 1] - lips[6, 1]) / 2
                width = lips[3, 0] - lips[0, 0]
                mouth = ((xx - 0.5) / width * 2) ** 2 + ((yy - centre) / half_height) ** 2 < 1
                image = np.full((size, size, 3), 40, np.uint8)
                image[head] = (np.array([230, 180, 150]) * tone).astype(np.uint8)
                image[mouth] = (90, 20, 30)
                jpeg = simplejpeg.encode_jpeg(image, quality=params.jpeg_quality, colorspace="RGB")
                landmarks = np.full(LANDMARKS_DIM, np.nan if not face_found else 0.5, np.float32)
                writer.add(
                    frame=i,
                    time=i / params.fps,
                    face_found=face_found,
                    landmarks=landmarks,
                    lips=lips.reshape(-1) if face_found else np.full(LIPS_DIM, np.nan, np.float32),
                    audio=audio[i],
                    face=jpeg,
                    crop=np.zeros(CROP_DIM, np.float32),
                )
            writer.commit()
    return Path(shards)


def train_tiny(
    params_file: Path, shards: Path, root: Path, lstm: list[str], cgan: list[str]
) -> tuple[Path, Path]:
    """An LSTM and a generator trained on `shards` by the real stage entry points, on the CPU, with
    the given `--override`s: (root/lstm.pt, root/cgan.pt). `root` is the project root: checkpoints/
    and dvclive/ go under it."""
    from models import train_cgan, train_lstm

    paths = []
    for name, main, overrides in (("lstm", train_lstm.main, lstm), ("cgan", train_cgan.main, cgan)):
        out = root / f"{name}.pt"
        argv = ["--root", str(root), "--params", str(params_file), "--shards", str(shards)]
        argv += [f"--{name}", str(out)]
        for override in ("device=cpu", *overrides):
            argv += ["--override", override]
        main(argv)
        paths.append(out)
    return paths[0], paths[1]


def params_copy(folder: Path, overrides: dict | None = None):
    """(folder/params.yaml, a copy of the project's, and the Params it gives with `overrides`)."""
    from tasks.params import load_params

    path = folder / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    return path, load_params(path, overrides)


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
