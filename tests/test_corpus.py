"""flows/corpus.py: build_corpus's choice of stages, what it passes them and when it keeps a corpus. The
stages themselves are replaced by one that records its command line and leaves the output a stage leaves
(the real ones are the project's own stages, tested on their own). Then a real build, interrupted while it
trains, beside a workspace of its own: the workspace is left byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import ROOT

from flows import corpus
from flows.corpus import MADE, ROWS, STAGES, build_corpus, override_options
from tasks.config.params import DemoParams
from tasks.config.params_loader import load_params
from tasks.config.paths import Paths
from tasks.demo.corpus import make_demo_corpus


@pytest.fixture
def ran(monkeypatch) -> list[tuple[str, ...]]:
    """The stages run, as (module, root, *extra), each leaving its output in the corpus at root."""
    calls: list[tuple[str, ...]] = []

    def stage(module: str, root, *extra: str) -> None:
        calls.append((module, str(root), *extra))
        made = getattr(Paths.at(root), MADE[module])
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_bytes(b"made")

    monkeypatch.setattr(corpus, "_stage", stage)
    return calls


@pytest.fixture
def sources(tmp_path):
    path = tmp_path / "sources.txt"
    path.write_text("../clips/one.mp4\n")
    return path


def test_a_corpus_runs_every_stage_once_and_is_kept_while_its_stamp_matches(ran, sources, tmp_path):
    root = tmp_path / "corpus"
    paths = build_corpus(root, sources, {"cgan.epochs": 3})
    assert [call[0] for call in ran] == list(STAGES) and {call[1] for call in ran} == {str(root.resolve())}
    params = load_params(paths.params)
    assert (params.data.source, params.data.sources_file, params.cgan.epochs) == ("sources", str(sources), 3)
    build_corpus(root, sources, {"cgan.epochs": 3, "adapt.epochs": 7})  # a section no stage reads
    assert len(ran) == len(STAGES)
    assert load_params(paths.params).adapt.epochs == 7  # its params.yaml is today's all the same
    build_corpus(root, sources, {"cgan.epochs": 4})
    assert len(ran) == 2 * len(STAGES)
    paths.metrics.unlink()  # its last stage's output gone: built anew
    build_corpus(root, sources, {"cgan.epochs": 4})
    assert len(ran) == 3 * len(STAGES)


def test_a_corpus_of_rows_runs_ingest_and_preprocess_and_is_kept_over_other_params(ran, sources, tmp_path):
    root = tmp_path / "rows"
    paths = build_corpus(root, sources, {"split.by": "speaker"}, stages=ROWS)
    assert [call[0] for call in ran] == ["flows.ingest", "flows.preprocess"]
    others = {"split.by": "speaker", "lstm.epochs": 2, "render.silence_db": 0}
    build_corpus(root, sources, others, stages=ROWS)
    assert len(ran) == 2 and load_params(paths.params).lstm.epochs == 2
    build_corpus(root, sources, {"preprocess.jpeg_quality": 80}, stages=ROWS)
    assert len(ran) == 4
    sources.write_text("../clips/two.mp4\n")
    build_corpus(root, sources, {"preprocess.jpeg_quality": 80}, stages=ROWS)
    assert len(ran) == 6


def test_a_corpus_on_another_ones_rows_trains_on_its_shards(ran, sources, tmp_path):
    frame = build_corpus(tmp_path / "frame", sources)
    ran.clear()
    noise = build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                         stages=("models.training.train_cgan",), rows=frame)
    settings = {"data.source": "sources", "data.sources_file": str(sources.resolve()),
                "cgan.condition": "noise"}
    assert ran == [("models.training.train_cgan", str((tmp_path / "noise").resolve()), "--shards",
                    str(frame.shards.resolve()), *override_options(settings))]
    assert noise.shards == frame.shards and noise.videos == frame.videos
    assert noise.cgan == Paths.at(tmp_path / "noise").cgan and noise.cgan.is_file()
    build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                 stages=("models.training.train_cgan",), rows=frame)
    assert len(ran) == 1
    stamp = json.loads((frame.root / corpus.STAMP).read_text())
    (frame.root / corpus.STAMP).write_text(json.dumps({**stamp, "sources": "another"}))  # rows made anew
    build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                 stages=("models.training.train_cgan",), rows=frame)
    assert len(ran) == 2


def test_on_another_corpus_s_rows_only_training_runs(sources, tmp_path):
    with pytest.raises(ValueError, match="only"):
        build_corpus(tmp_path / "x", sources, stages=ROWS, rows=Paths.at(tmp_path / "frame"))


def test_each_stage_is_given_the_overrides_its_params_yaml_holds(ran, sources, tmp_path):
    """So that a stage's log names them (flows/common.py: record_params), not `overrides: none`."""
    paths = build_corpus(tmp_path / "c", sources, {"lstm.epochs": 2, "render.size": 128})
    written = load_params(paths.params)
    for module, _, *extra in ran:
        assert extra[::2] == ["--override"] * 4, module
        given = {key: json.loads(value) for key, value in (option.split("=", 1) for option in extra[1::2])}
        assert given == {"data.source": "sources", "data.sources_file": str(sources.resolve()),
                         "lstm.epochs": 2, "render.size": 128}
        assert load_params(paths.params, given) == written, "what it is given is what its params.yaml holds"



def test_a_flow_s_log_names_where_its_params_file_differs_from_the_project_s(tmp_path):
    """A stage run with --root DIR reads DIR/params.yaml: its log names the keys that differ from the
    project's params.yaml (flows/common.py: params_changes), within the sections it records."""
    from flows.common import params_changes

    params = load_params(ROOT / "params.yaml").model_dump(mode="json")
    params["data"]["limit"], params["render"]["size"] = 3, 64
    mine = tmp_path / "params.yaml"
    mine.write_text(yaml.safe_dump(params))
    said = params_changes(mine, {"data", "demo"})
    assert said == f"{mine} differs from {ROOT / 'params.yaml'} in: data.limit=3"
    assert params_changes(mine, {"preprocess"}) == ""
    assert params_changes(tmp_path / "nowhere.yaml", {"data"}) == "", "nothing to compare: nothing said"


def workspace_copy(folder: Path) -> Path:
    """The project's code, params.yaml and sources files in a folder of their own, with models in its
    artifacts/: a workspace whose PROJECT_ROOT (tasks/config/paths.py) is that folder."""
    for name in ("flows", "tasks", "models"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "base"))
    shutil.copytree(ROOT / "data" / "sources", folder / "data" / "sources")
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    (folder / "artifacts").mkdir()
    for name in ("lstm.pt", "cgan.pt"):
        (folder / "artifacts" / name).write_bytes(os.urandom(4096))
    return folder


def digest(workspace: Path) -> dict[str, str]:
    """sha256 of params.yaml and of every file under artifacts/ and data/."""
    files = [workspace / "params.yaml", *(workspace / "artifacts").rglob("*"),
             *(workspace / "data").rglob("*")]
    return {str(f.relative_to(workspace)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(files) if f.is_file()}


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, f"the build ended before {text!r}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.slow  # a real build, 30-50 s; commands stopped alone stay in the default suite (test_stopped.py)
def test_a_build_stopped_while_it_trains_leaves_the_workspace_as_it_was(prefect_server, tmp_path):
    """`python -m flows.corpus build` on one 1 s demo clip, stopped by SIGTERM once its LSTM trains: it
    ends the stage it runs and says so; the workspace's params.yaml, artifacts/ and data/ are unchanged,
    byte for byte; each stage's log named the overrides it ran with."""
    from prefect.settings import PREFECT_API_URL

    workspace = workspace_copy(tmp_path / "workspace")
    before = digest(workspace)
    clips = make_demo_corpus(tmp_path / "clips", DemoParams(clips=1, seconds=1.0, size=256))
    sources = tmp_path / "sources.txt"
    sources.write_text("".join(f"{clip.resolve()}\n" for clip in clips))
    root, log = tmp_path / "corpus", tmp_path / "build.log"
    env = {**os.environ, "PYTHONPATH": str(workspace), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "REENACT_PROGRESS_SECONDS": "1"}  # progress lines every second, not 15
    command = [sys.executable, "-m", "flows.corpus", "build", str(sources), "--root", str(root),
               "--override", "lstm.epochs=1000"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=workspace, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for(log, "lstm: training ", process)  # its progress: the LSTM's stage is training
        stage = [child for child in psutil.Process(process.pid).children()
                 if "models.training.train_lstm" in child.cmdline()]
        process.send_signal(signal.SIGTERM)  # the build alone: it must end its stage itself
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    said = log.read_text()
    assert stage and not stage[0].is_running(), "the stage it ran ended with it"
    assert f"corpus: stopped by SIGTERM; {root} is left as far as it got" in said
    assert digest(workspace) == before
    assert sorted(p.name for p in (workspace / "data").iterdir()) == ["sources"]
    assert "params used (overrides: {'data.source': 'sources', 'data.sources_file': " in said
    assert "'lstm.epochs': 1000}" in said and "corpus: build 2/5 stages" in said
    assert (root / "data" / "shards" / "video_id=demo_00").is_dir()  # as far as it got
