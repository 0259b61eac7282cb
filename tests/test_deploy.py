"""Prefect deployments for real: a `prefect server start` on 127.0.0.1, a process work pool,
`prefect deploy --all`, a worker, and flow runs triggered through the API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import psutil
import pytest
from helpers import BIN, dvc_project_copy, free_port, stop, wait_for_http
from render_kit import write_voice

from tasks.config.files import sha256_file
from tasks.config.params_loader import load_params
from tasks.config.paths import Paths
from tasks.demo.corpus import make_clip
from tasks.provenance.manifest import verify_mp4
from tasks.table.shards import partition_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory):
    """A Prefect server with its own PREFECT_HOME, a process pool, the project deployed, one worker."""
    project = dvc_project_copy(tmp_path_factory.mktemp("project"), ("prefect.yaml", "models"))
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # prefect.yaml's pull step reads {{ $PWD }} at deploy time, as a shell in the project sets it.
        "PWD": str(project),
    }
    logs = home / "logs"
    logs.mkdir()
    started: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            process = subprocess.Popen(
                [str(BIN / "prefect"), *args],
                cwd=project,
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    def cli(*args: str) -> str:
        done = subprocess.run(
            [str(BIN / "prefect"), *args], cwd=project, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    server = launch("server", "server", "start", "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_for_http(f"{api}/health", server, logs / "server.log", "the Prefect server")
        cli("work-pool", "create", "reenact", "--type", "process")
        cli("--no-prompt", "deploy", "--all")
        launch("worker", "worker", "start", "--pool", "reenact", "--limit", "1")
        yield {"project": project, "env": env, "api": api, "logs": logs, "processes": started}
    finally:
        pids = [p.pid for p in started]
        for process in reversed(started):
            stop(process)
        leftovers = [
            pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
        ]
        assert not leftovers, f"processes left behind: {leftovers}"


def run_deployment(stack: dict, name: str, parameters: dict, timeout: float = 300) -> tuple[str, str, list]:
    """Trigger a deployment through the API and wait for its final state: (state, id, artifact keys)."""
    script = f"""
import asyncio, json
from prefect.deployments import run_deployment
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

run = run_deployment({name!r}, parameters=json.loads({json.dumps(json.dumps(parameters))}), timeout={timeout})

async def artifacts():
    async with get_client() as client:
        by_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        found = await client.read_artifacts(artifact_filter=by_run)
        return [{{"key": a.key, "type": a.type, "data": a.data}} for a in found]

print(json.dumps({{"state": run.state.type.value, "id": str(run.id), "artifacts": asyncio.run(artifacts())}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=stack["project"],
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["state"] != "COMPLETED":
        worker_log = (stack["logs"] / "worker.log").read_text()[-4000:]
        pytest.fail(f"{name} ended {result['state']}; worker log:\n{worker_log}")
    return result["state"], result["id"], result["artifacts"]


def test_preprocess_deployment_on_two_demo_videos(prefect_stack):
    project = Paths.at(prefect_stack["project"])
    demo = load_params(project.params).demo
    project.videos.mkdir(parents=True)
    for index in range(2):
        make_clip(project.videos / f"demo_{index:02d}.mp4", seconds=2.0, seed=index, params=demo)

    _state, _run_id, artifacts = run_deployment(
        prefect_stack, "preprocess/default", {"overrides": {"preprocess.detect_every": 5}}
    )

    frames = pd.read_parquet(project.shards)
    assert sorted(frames["video_id"].unique()) == ["demo_00", "demo_01"]
    assert len(frames) == 120 and frames["face_found"].mean() >= 0.95
    keys = {a["key"]: a for a in artifacts}
    assert {"preprocess-videos", "preprocess-summary", "preprocess-params"} <= set(keys)
    assert "detect_every: 5" in keys["preprocess-params"]["data"], "the run records the params it used"
    table = keys["preprocess-videos"]["data"]
    table = json.loads(table) if isinstance(table, str) else table
    assert sorted(row["video_id"] for row in table) == ["demo_00", "demo_01"]
    assert "2 written" in keys["preprocess-summary"]["data"]


def test_pipeline_deployment_runs_dvc_repro(prefect_stack):
    project = Paths.at(prefect_stack["project"])
    env = prefect_stack["env"]
    subprocess.run(["git", "init", "-q"], cwd=project.root, env=env, check=True)  # .dvc/config came along

    _state, _run_id, artifacts = run_deployment(prefect_stack, "pipeline/default", {"stages": ["ingest"]})

    manifest = pd.read_parquet(project.manifest)
    assert list(manifest["video_id"]) == ["demo_00", "demo_01"]
    assert (project.root / "dvc.lock").exists()
    keys = {a["key"] for a in artifacts}
    assert {"pipeline-metrics", "pipeline-summary"} <= keys


def test_render_deployment_signs_the_mp4_and_publishes_it(prefect_stack, kit, tmp_path):
    project = Paths.at(prefect_stack["project"])
    project.artifacts.mkdir(exist_ok=True)
    shutil.copy(kit.paths.lstm, project.lstm)
    shutil.copy(kit.paths.cgan, project.cgan)
    # the face the kit's generator paints: its target's rows (the project's own videos are not in it)
    shutil.copytree(partition_dir(kit.paths.shards, kit.target), partition_dir(project.shards, kit.target),
                    dirs_exist_ok=True)
    write_voice(tmp_path / "speech.wav", 2.0, seed=21)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    ]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/speech.wav"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        overrides = {"device": "cpu", "render.size": 128, "provenance.key_dir": str(tmp_path / "keys")}
        _state, _run_id, artifacts = run_deployment(
            prefect_stack,
            "render/default",
            {"audio": url, "output": "face", "out": "renders/deployed.mp4", "overrides": overrides},
        )
    finally:
        stop(server)

    video = project.renders / "deployed.mp4"
    verdict = verify_mp4(video)
    assert verdict.ok and verdict.synthetic and len(verdict.soft_binding) == 8
    assert verdict.facts["speech_name"] == url, "the manifest names the URL, not the temporary download"
    assert verdict.facts["speech_sha256"] == sha256_file(tmp_path / "speech.wav")
    keys = {a["key"]: a for a in artifacts}
    assert {"render-video", "render-summary", "render-params"} <= set(keys)
    assert keys["render-video"]["data"] == f"[deployed.mp4]({video.as_uri()})", (
        "a link artifact (Prefect: markdown)"
    )
    summary = keys["render-summary"]["data"]
    for text in (
        "real-time factor",
        "2.00 s (60 frames)",
        verdict.facts["target_video"],
        verdict.digest,
        "signed and intact",
        f"watermark id (soft binding) | `{verdict.soft_binding}`",
    ):
        assert text in summary, (text, summary)
