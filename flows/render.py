"""The `render` flow (deployment `render/default`) and `render_file`, the one render call that the
flow, the web app (flows/app.py) and the CLI share.

Speech comes from a local path or an http(s) URL (downloaded to a temporary file; every other
scheme is refused, as for ingest sources). The mp4 carries a signed C2PA manifest (written by
models.rendering.render.render through tasks/provenance/manifest.py); `render_file` reads it
back, so every caller
can show what the file says about itself.
"""

from __future__ import annotations

import datetime
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from flows.common import artifact_key, flow_project, publish_markdown, record_params
from models.rendering.layouts import check_output
from models.rendering.loading import Target, resolve_target
from models.rendering.render import RenderError, RenderOptions, RenderResult
from models.rendering.render import render as render_video
from tasks.config.files import safe_id
from tasks.config.params import Output
from tasks.config.params_loader import load_params
from tasks.config.paths import Paths
from tasks.ingest.download import SourceError, check_source
from tasks.provenance.manifest import Verdict, verify_mp4

Progress = Callable[[str, int, int], None]
MAX_DOWNLOAD_BYTES = 512 << 20
DOWNLOAD_TIMEOUT_S = 60


def fetch_speech(audio: str | Path, scratch: Path, max_bytes: int = MAX_DOWNLOAD_BYTES) -> tuple[Path, str]:
    """(local file, name for the manifest): a path as it is; an http(s) URL downloaded into `scratch`
    and named by its URL. Any other scheme (file://, ftp://, data:, ...) raises RenderError."""
    text = str(audio)
    try:
        kind = check_source(text)
    except SourceError as exc:
        raise RenderError(str(exc)) from None
    if kind == "path":
        return Path(text), Path(text).name
    name = safe_id(Path(unquote(urlparse(text).path)).stem or "speech")
    target = scratch / f"{name}{Path(urlparse(text).path).suffix[:8] or '.audio'}"
    try:
        with urllib.request.urlopen(text, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as file:
            copied = 0
            while block := response.read(1 << 20):
                copied += len(block)
                if copied > max_bytes:
                    raise RenderError(f"{text}: larger than {max_bytes >> 20} MB")
                file.write(block)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise RenderError(f"{text}: download failed ({exc})") from None
    return target, text


def default_out(folder: Path, speech_name: str, target: str | None, output: str) -> Path:
    """folder/<speech>_<target>_<output>_<UTC time>.mp4: a new file per run, never a stage's output
    (`paths.runs` for the CLI and the deployment, `paths.app_renders` for the web app)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S-%f")
    stem = safe_id(Path(urlparse(speech_name).path).stem or "speech", 40)
    return Path(folder) / f"{stem}_{target or 'default'}_{output}_{stamp}.mp4"


def render_file(
    audio: str | Path,
    out: str | Path | None = None,
    *,
    paths: Paths,
    target: str | Target | None = None,
    output: Output | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> RenderResult:
    """Render speech (a path or an http(s) URL) to a signed mp4 (default: a new file in `paths.runs`)
    and read its manifest back. The params are the project's (`paths`, tasks/config/paths.py) with
    `overrides`; `target` is a name that models/rendering/loading.py: resolve_target resolves (an adapted
    target brings its own generator, rows and footage), or a Target already resolved (the web app keeps
    them loaded).

    Returns the render's RenderResult with `speech` (the name the manifest records) and `provenance` (a
    tasks.provenance.manifest.Verdict). Raises RenderError (bad speech, unknown target, refused URL),
    ParamsError, FileNotFoundError.
    """
    params = load_params(paths.params, overrides)
    output = check_output(output or params.render.output)  # before the models load
    if not isinstance(target, Target):
        target = resolve_target(paths, params, target)
    with tempfile.TemporaryDirectory(prefix="reenact-speech-") as scratch:
        speech, name = fetch_speech(audio, Path(scratch))
        out = Path(out) if out else default_out(paths.runs, name, target.name, output)
        # The manifest names the speech as the user gave it (a URL, not the temporary download).
        facts = {"speech_name": name} if name != speech.name else None
        result = render_video(
            speech, out, target, params, RenderOptions(output=output, progress=progress, provenance=facts)
        )
    return replace(result, speech=name, provenance=verify_mp4(out))


def summary_markdown(result: RenderResult, output: str) -> str:
    verdict: Verdict = result.provenance
    rows = [
        ("video", f"`{result.out}`"),
        ("speech", f"`{result.speech}`"),
        ("target", f"`{result.target}`"),
        ("output", output),
        ("length", f"{result.video_seconds:.2f} s ({result.frames} frames)"),
        ("render time", f"{result.wall_seconds:.1f} s"),
        ("real-time factor", f"{result.realtime_factor:.2f}x"),
        ("provenance", verdict.describe()),
        ("manifest", f"`{verdict.manifest}`"),
        ("provenance digest", f"`sha256:{verdict.digest}`"),
        ("watermark id (soft binding)", f"`{verdict.soft_binding or 'none'}`"),
    ]
    lines = ["# Render", "", "| | |", "| --- | --- |", *[f"| {key} | {value} |" for key, value in rows]]
    return "\n".join(lines)


@flow(name="render")
def render_flow(
    audio: str,
    target: str | None = None,
    output: Output | None = None,
    out: str | None = None,
    overrides: dict[str, Any] | None = None,
    root: str = ".",
) -> dict[str, Any]:
    """Speech (a path or an http(s) URL) -> a signed talking-head mp4 in the project at `root` (`out`:
    relative to it; default a new file in its paths.runs); publishes a link and a summary."""
    logger = get_run_logger()
    paths, params = flow_project(Path(root).resolve(), None, overrides)  # fail fast, naming the bad key
    record_params("render", params, overrides, {"device", "render", "provenance"}, paths.params)
    output = output or params.render.output
    out_path = paths.root / out if out else default_out(paths.runs, str(audio), target, output)
    last = {"logged": 0.0}

    def progress(phase: str, done: int, total: int) -> None:
        if done == total or time.monotonic() - last["logged"] > 5:
            last["logged"] = time.monotonic()
            logger.info("%s: %d / %d", phase, done, total)

    result = render_file(
        audio,
        out_path,
        paths=paths,
        target=target,
        output=output,
        overrides=overrides,
        progress=progress,
    )
    verdict: Verdict = result.provenance
    logger.info("%s: %s", out_path, verdict.describe())
    create_link_artifact(
        key=artifact_key("render-video"),
        link=out_path.as_uri(),
        link_text=out_path.name,
        description="the rendered mp4",
    )
    publish_markdown("render-summary", summary_markdown(result, output), "length, speed, target, provenance")
    return {
        "out": str(out_path),
        "frames": result.frames,
        "audio_seconds": result.audio_seconds,
        "realtime_factor": result.realtime_factor,
        "target": result.target,
        "signed": verdict.ok,
        "provenance_digest": verdict.digest,
        "watermark_id": verdict.soft_binding,
    }
