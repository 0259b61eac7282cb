"""The web app, `reenact app`: speech in a browser -> a signed talking-head mp4; the dataset at a glance.

Tab "Render": upload or record speech, pick a target (a video of the corpus, or a person adapted by
`reenact adapt`; with a thumbnail), choose full frame / face / panel; progress while it renders, then
the video to play and download, with what its C2PA manifest says. Tab "Live": the browser's microphone in,
the target speaking out, frame by frame (flows/live.py). Tab "Dataset": the contact sheet,
`reenact inspect`'s table and paths.metrics. Every location is the project's (tasks/config/paths.py);
renders go to renders/app.

The models are loaded once per process and renders run one at a time through Gradio's queue
(concurrency_limit=1), so two users cannot both hold a render's memory. Bad input is a message in
the page, never a stack trace. It listens on loopback unless told otherwise (flows/cli.py); on any
other address it asks for a login and will not start without one. What stands before it (the login
page, wrong logins slowed, uploads bounded) is flows/app_guard.py; its process, its folder of
temporary files and its stop, flows/serve.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# Before gradio is imported: no usage reports or update checks from an offline tool.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from gradio.utils import get_upload_folder

from flows.app_targets import Targets
from flows.live import Live, live_tab
from flows.render import default_out, render_file
from flows.serve import Stop, discard_upload
from models.rendering.render import RenderError, RenderResult
from tasks.config.params_loader import ParamsError, load_params
from tasks.config.paths import Paths
from tasks.rows.decode import DecodeError, probe
from tasks.table.inspect import summarize, write_sheet

AUTH_MESSAGE = "Log in with a user and password from the app's login file."
OUTPUT_LABELS = {"full": "Full frame", "face": "Face", "panel": "Panel (target | composite, lip traces)"}


class BadUpload(ValueError):
    """Speech the app refuses; the message is shown in the page as it is."""


def check_speech(path: str | None, max_seconds: float) -> float:
    """The upload's duration in seconds, or BadUpload saying why it cannot be rendered."""
    if not path:
        raise BadUpload("No speech yet: upload an audio file or record some.")
    name = Path(path).name
    if not Path(path).is_file():
        raise BadUpload(f"{name} is gone: upload it again (the app removes each upload after its render).")
    if Path(path).stat().st_size == 0:
        raise BadUpload(f"{name} is empty.")
    try:
        info = probe(path)
    except DecodeError:
        raise BadUpload(f"{name} is not an audio file ffmpeg can read.") from None
    if not info.has_audio:
        raise BadUpload(f"{name} has no audio track.")
    if info.duration <= 0:
        raise BadUpload(f"{name} holds no sound.")
    if info.duration > max_seconds:
        raise BadUpload(
            f"{name} is {info.duration:.0f} s long; this app renders at most {max_seconds:.0f} s."
        )
    return info.duration


def dataset_view(paths: Paths, cache: Path) -> tuple[str | None, list[list[Any]], Any]:
    """(contact sheet PNG, inspect rows, metrics) as the Dataset tab shows them; absent parts are empty."""
    summaries = summarize(paths.shards) if paths.shards.is_dir() else []
    rows = [
        [
            s.video_id,
            s.frames,
            s.frames_with_face,
            f"{s.frames_with_face / max(s.frames, 1):.1%}",
            s.parts,
            f"{s.bytes / 1e6:.1f} MB",
        ]
        for s in summaries
    ]
    sheet = None
    if rows:
        try:
            sheet = str(write_sheet(paths.shards, cache / "contact_sheet.png"))
        except ValueError:
            sheet = None
    metrics = {str(paths.metrics): "none yet"}
    if paths.metrics.exists():
        metrics = json.loads(paths.metrics.read_text())
    return sheet, rows, metrics


def provenance_markdown(result: RenderResult) -> str:
    verdict = result.provenance
    lines = [
        f"**{verdict.describe()}**",
        "",
        (
            f"{result.video_seconds:.1f} s of video on `{result.target}` in "
            f"{result.wall_seconds:.1f} s ({result.realtime_factor:.1f}x real time)"
        ),
        "",
        "| field | the manifest says |",
        "| --- | --- |",
        f"| digital source type | `{verdict.source_type.rsplit('/', 1)[-1]}` |",
        *[f"| {key} | `{value}` |" for key, value in verdict.facts.items()],
        f"| manifest | `{verdict.manifest}` |",
        f"| content sha256 | `{verdict.digest}` |",
        f"| watermark id (soft binding) | `{verdict.soft_binding or 'none'}` |",
    ]
    return "\n".join(lines)


def _render_handler(targets: Targets, max_seconds: float, stop: Stop | None = None):
    stop = stop or Stop()

    def render(speech: str | None, target: str, output: str, progress=gr.Progress()):  # noqa: B008
        """One render at a time; the upload is removed once it is done, whatever became of it."""
        with stop.rendering:
            try:
                return render_once(speech, target, output, progress)
            finally:
                discard_upload(speech, Path(get_upload_folder()))

    def report(progress: gr.Progress, phase: str, done: int, total: int) -> None:
        stop.check()
        progress((done, total), desc=phase)

    def render_once(speech: str | None, target: str, output: str, progress: gr.Progress):
        try:
            check_speech(speech, max_seconds)
            out = default_out(targets.paths.app_renders, Path(speech).name, target, output)
            result = render_file(
                speech,
                out,
                paths=targets.paths,
                target=targets(target),
                output=output,
                progress=lambda phase, done, total: report(progress, phase, done, total),
            )
        except (BadUpload, RenderError, ParamsError, FileNotFoundError) as exc:
            return None, None, f"**Cannot render:** {exc}"
        except Exception as exc:  # noqa: BLE001  (a bug: the page gets one line, the console the traceback)
            import traceback

            traceback.print_exc()
            return None, None, f"**Render failed:** {type(exc).__name__}: {exc}"
        return result.out, result.out, provenance_markdown(result)

    return render


def _render_tab(targets: Targets, max_seconds: float, default: str, cache: Path, stop: Stop) -> None:
    with gr.Row():
        with gr.Column():
            speech = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Speech", elem_id="speech"
            )
            target = gr.Dropdown(
                targets.choices(), value=default, label="Target video (whose face speaks)", elem_id="target"
            )
            preview = gr.Image(
                targets.thumbnail(default, cache),
                label="Target",
                interactive=False,
                height=200,
                elem_id="thumbnail",
            )
            output = gr.Radio(
                [(label, o) for o, label in OUTPUT_LABELS.items()],
                value="full",
                label="Output",
                elem_id="output",
            )
            button = gr.Button("Render", variant="primary", elem_id="render")
        with gr.Column():
            video = gr.Video(label="Result", interactive=False, elem_id="result")
            download = gr.File(label="Download the mp4", interactive=False, elem_id="download")
            status = gr.Markdown(
                "Every render is signed (C2PA) as AI-generated and carries an invisible watermark; "
                "`reenact verify FILE` checks both.",
                elem_id="status",
            )
    target.change(lambda name: targets.thumbnail(name, cache), target, preview)
    button.click(
        _render_handler(targets, max_seconds, stop),
        [speech, target, output],
        [video, download, status],
        concurrency_limit=1,
        concurrency_id="render",
    )


def _dataset_tab(paths: Paths, cache: Path) -> None:
    sheet, rows, metrics = dataset_view(paths, cache)
    gr.Markdown(f"`reenact inspect {paths.shards}`")
    table = gr.Dataframe(
        rows,
        headers=["video", "frames", "with a face", "share", "parts", "on disk"],
        interactive=False,
        elem_id="inspect",
    )
    image = gr.Image(
        sheet, label="Contact sheet: sample crops and their lips", interactive=False, elem_id="sheet"
    )
    gr.Markdown(f"Latest `{paths.metrics}`")
    report = gr.JSON(metrics, elem_id="metrics")
    refresh = gr.Button("Refresh")

    def reload() -> tuple[list[list[Any]], str | None, Any]:
        sheet, rows, metrics = dataset_view(paths, cache)
        return rows, sheet, metrics

    refresh.click(reload, None, [table, image, report])


def create_app(paths: Paths, max_seconds: float = 300.0, stop: Stop | None = None,
               live_only: str | None = None) -> gr.Blocks:
    """The Blocks app over the project at `paths`, with the models loaded; uploads longer than
    `max_seconds` are refused; `stop(app)` ends it; `live_only`: the Live view of that target alone
    (`reenact live`). Raises FileNotFoundError / ParamsError / RenderError."""
    params = load_params(paths.params)
    targets = Targets(paths, params)
    default = live_only or params.render.target_video or targets.default()
    live = Live(targets, params, default)
    if live_only:
        live.check(live_only)
    cache = Path(tempfile.mkdtemp(prefix="reenact-app-"))
    paths.app_renders.mkdir(parents=True, exist_ok=True)
    # Renders and thumbnails are served from where they are, not copied into Gradio's upload folder.
    gr.set_static_paths([paths.app_renders.resolve(), cache])
    with gr.Blocks(title="reenact", analytics_enabled=False) as app:
        gr.Markdown("# reenact\nSpeech in, talking head out. Every video is signed as AI-generated.")
        if live_only:  # flows/live.py
            live_tab(live, [(default, default)], default)
        else:
            with gr.Tab("Render"):
                _render_tab(targets, max_seconds, default, cache, stop or Stop())
            with gr.Tab("Live"):
                live_tab(live, targets.choices(), default)
            with gr.Tab("Dataset"):
                _dataset_tab(paths, cache)
    app.queue(default_concurrency_limit=1)
    app.reenact_routes = [live.route()]  # served beside Gradio's by `launch`
    return app


def launch(
    app: gr.Blocks,
    paths: Paths,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: list[tuple[str, str]] | None = None,
    guard: Any = None,
    max_file_bytes: int = 200_000_000,
) -> None:
    """Serve until interrupted, with Gradio's sessions when `auth` (flows/app_guard.py: logins) is given
    and `guard` (a starlette Middleware: flows/app_guard.py) before its routes; only the render folder and
    the app's thumbnails are served as files, and no upload may be larger than `max_file_bytes`."""
    # System fonts: the default theme's web fonts would be fetched from the internet.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message=AUTH_MESSAGE if auth else None,
        share=False,
        ssr_mode=False,
        show_error=False,
        allowed_paths=[str(paths.app_renders.resolve())],
        max_file_size=max_file_bytes,
        theme=theme,
        footer_links=[],
        app_kwargs={"middleware": [guard] if guard else [], "routes": getattr(app, "reenact_routes", [])},
    )
