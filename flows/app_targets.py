"""The targets the web app offers (flows/app.py): the corpus generator's videos and every target adapted
by `reenact adapt`, each resolved once, with a thumbnail."""

from __future__ import annotations

import subprocess
from pathlib import Path

from models.rendering.loading import Target, resolve_target
from models.rendering.render import RenderError, load_models
from models.training.targets import list_targets
from tasks.config.params import Params
from tasks.config.paths import TARGET_RECORD, Paths
from tasks.table.shards import frames_with_face, read_frames


def thumbnail(video_id: str, paths: Paths, cache: Path) -> str | None:
    """A frame of the target: from its video when there is one, else its first face crop in the shards."""
    png = cache / f"{video_id}.png"
    if png.exists():
        return str(png)
    source = paths.videos / f"{video_id}.mp4"
    if source.exists():
        command = [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            "0.5",
            "-i",
            str(source),
            "-frames:v",
            "1",
            "-vf",
            "scale=256:-2",
            str(png),
        ]
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode == 0 and png.exists():
            return str(png)
    try:
        found = frames_with_face(paths.shards, video_id)
    except FileNotFoundError:
        return None
    if len(found) == 0:
        return None
    face = read_frames(paths.shards, video_id, ["face"], frames=found[:1]).column("face")[0]
    png.with_suffix(".jpg").write_bytes(face.as_py())
    return str(png.with_suffix(".jpg"))


class Targets:
    """Every target a render may name, each resolved once (models/rendering/loading.py: resolve_target):
    the corpus's videos with the project's models, loaded at start (none in a project that has only
    adapted targets); an adapted target with its own, one at a time, resolved again when it is adapted
    again (`reenact adapt --replace`) while the app runs."""

    def __init__(self, paths: Paths, params: Params):
        self.paths, self.params = paths, params
        corpus = paths.lstm.is_file() and paths.cgan.is_file()
        self.models = None
        if corpus or not self.adapted():  # no models and no adapted target: load_models says what is missing
            self.models = load_models(paths.lstm, paths.cgan, params.device)
        self.loaded: dict[tuple[str, float | None], Target] = {}

    def adapted(self) -> list[tuple[str, str]]:
        return [(f"{t.name} (adapted)", t.name) for t in list_targets(self.paths)]

    def choices(self) -> list[tuple[str, str]]:
        """(label, target) of each video of the corpus generator, then each adapted target."""
        videos = sorted(self.models.cgan_artifact.lips_stats) if self.models else []
        return [(video_id, video_id) for video_id in videos] + self.adapted()

    def default(self) -> str:
        """The corpus generator's own target, else the first adapted one."""
        return self.models.cgan_artifact.target_video if self.models else self.adapted()[0][1]

    def __call__(self, name: str) -> Target:
        record = self.paths.target_dir(name) / TARGET_RECORD
        key = (name, record.stat().st_mtime if record.is_file() else None)
        if key not in self.loaded:
            if key[1] is not None:  # one adapted target loaded at a time
                self.loaded = {k: v for k, v in self.loaded.items() if v.adapted is None}
            self.loaded[key] = resolve_target(self.paths, self.params, name, self.models)
        return self.loaded[key]

    def thumbnail(self, name: str, cache: Path) -> str | None:
        """The target's thumbnail, None for one that does not resolve."""
        try:
            return thumbnail(name, self(name).paths, cache)
        except (RenderError, FileNotFoundError):
            return None
