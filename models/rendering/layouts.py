"""What the encoder gets for each render output (ARCHITECTURE.md, Rendering): the generated faces
("face"), the paper's Fig. 6 ("face_panel"), the faces composited into the target's own footage
("full") and the target frame beside that composite ("panel"). Faces come from the generator in
batches: with one noise vector (`noise`), or each painted into the crop of the target frame it will be
composited into (`frame`: FramesToPaint); footage and rows come from models/rendering/target.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from models.artifacts import CganArtifact
from models.errors import RenderError
from models.networks.cgan import Frames, generate_faces
from models.networks.unet import reference_bank
from models.records import References
from models.rendering.composite import composite
from models.rendering.loading import Models, Target
from models.rendering.mark import Marker
from models.rendering.panel import FramePanel, Panel, Traces
from models.rendering.target import (
    TargetFrames,
    TargetRows,
    pingpong,
    read_target_rows,
    target_video_file,
)
from tasks.config.params import OUTPUTS, CganParams, Output, Params


def check_output(output: str) -> Output:
    """`output` when it is one of OUTPUTS, else RenderError naming them."""
    if output not in OUTPUTS:
        raise RenderError(f"output {output!r}: not one of {', '.join(OUTPUTS)}")
    return output


Batches = Iterator[tuple[int, Sequence[np.ndarray]]]


@dataclass
class FrameStream:
    """Where a layout and the encoder meet: `width` x `height` RGB frames, which the encoder scales to
    `scale` squared when given (None: as they are), arriving in `batches` of (index of the first
    frame, the frames: an (n, height, width, 3) array or a list of frames)."""

    width: int
    height: int
    scale: int | None
    batches: Batches


class FramesToPaint:
    """What the frame generator paints into for output frames start..: the crops of target frames
    `pingpong(i, N)` (the order the footage plays in, models/rendering/target.py) with their landmarks,
    and for each the target's reference crop that `chosen_references` gives for its lips."""

    def __init__(self, rows: TargetRows, bank: References, artifact: CganArtifact):
        self.rows, self.bank, self.artifact = rows, bank, artifact

    def __call__(self, start: int, lips: np.ndarray) -> Frames:
        index = pingpong(np.arange(start, start + len(lips)), len(self.rows))
        return Frames.of(self.rows.crops(index), self.rows.landmarks[index], lips, self.bank, self.artifact)


def references_of(artifact: CganArtifact, video_id: str, lips: np.ndarray, face_found: np.ndarray,
                  faces: pa.Array, landmarks: np.ndarray) -> References:
    """A video's reference crops: the generator's record of them, else as many of its frames as the
    generator has of a video (cgan.references; models/networks/unet.py: reference_bank), for a video it
    was not trained on."""
    known = artifact.references.get(video_id)
    if known is not None:
        return known
    count = int(artifact.params.get("references", CganParams().references))
    return reference_bank(lips, face_found, faces, artifact.lip_indices, count, landmarks)


def painter(models: Models, rows: TargetRows) -> FramesToPaint | None:
    """What the frame generator paints into on the target of `rows` (read with faces=True); None for
    the noise generator."""
    artifact = models.cgan_artifact
    if artifact.condition != "frame":
        return None
    bank = references_of(artifact, rows.video_id, rows.lips, rows.face_found, rows.faces, rows.landmarks)
    return FramesToPaint(rows, bank, artifact)


def _faces(models: Models, final: np.ndarray, batch: int,
           paint: FramesToPaint | None) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, faces) batch by batch: one noise vector for every frame, or each painted into its
    own target frame (`paint`)."""
    with torch.inference_mode():
        for start in range(0, len(final), batch):
            lips = np.asarray(final[start : start + batch])
            frames = paint(start, lips) if paint is not None else None
            yield start, generate_faces(models.generator, models.cgan_artifact, lips, batch_size=batch,
                                        frames=frames)


def ahead(batches: Batches) -> Batches:
    """`batches`, the next made on a thread of its own while this one is used: the generator paints the
    next batch while this one is composited and encoded (torch and OpenCV let go of the GIL), on as many
    torch threads as the caller's. The worker's error is raised here; stopping early waits for the batch
    under way."""
    end, threads = object(), torch.get_num_threads()

    def step():  # on the caller's torch threads: OpenMP's count is each thread's own
        torch.set_num_threads(threads)
        return next(batches, end)

    with ThreadPoolExecutor(1, thread_name_prefix="reenact-paint") as worker:
        pending = worker.submit(step)
        while (batch := pending.result()) is not end:
            pending = worker.submit(step)
            yield batch


class Layout:
    """What one render needs besides the lips: the output, the target (resolved: its models, rows,
    footage and lip statistics), the corpus video the speech comes from (`real`, for the traces), and
    the watermark every frame gets (`marker`; None only to measure what it costs)."""

    def __init__(self, target: Target, params: Params, output: Output, real: str | None,
                 marker: Marker | None = None):
        self.models, self.params, self.paths = target.models, params, target.paths
        self.output, self.target, self.real, self.marker = output, target.name, real, marker
        self.stats, self.closed = target.stats, target.closed
        painted = self.models.cgan_artifact.condition == "frame"
        self.rows = None
        if output in ("full", "panel") or painted:
            self.rows = target.needs_rows(f"output {output}" if output in ("full", "panel") else
                                          "the frame generator")
        self.paint = painter(self.models, self.rows) if painted else None
        self.footage = None
        if output in ("full", "panel"):
            self.footage = TargetFrames(
                target_video_file(self.paths.videos, target.name), params.preprocess.fps, len(self.rows)
            )

    def frames(self, final: np.ndarray, raw: np.memmap) -> FrameStream:
        """The frames to encode for the final lips `final` (T, LIPS_DIM), `raw` (T, LIPS_DIM + 1) the
        LSTM's lips and the loudness, both possibly memmaps."""
        r, fps = self.params.render, self.params.preprocess.fps
        faces = ahead(_faces(self.models, final, r.batch_size, self.paint))
        if self.marker is not None and self.output in ("face", "face_panel"):
            faces = self._marked_faces(faces)
        traces = Traces(
            final,
            raw[:, -1],
            self.models.cgan_artifact.lip_indices,
            fps,
            self.stats,
            r.size // 4 * 2,
            real_lips(self.paths.shards, self.real),
        )
        if self.output == "face":
            size = self.models.cgan_artifact.face_size
            return FrameStream(size, size, r.size if r.size != size else None, faces)
        if self.output == "face_panel":
            view = Panel(r.size, traces, self.stats, self.paths.shards, self.real)
            batches = ((start, view.compose(start, batch)) for start, batch in faces)
            return FrameStream(*view.shape, None, batches)
        if self.output == "panel":
            view = FramePanel((self.footage.width, self.footage.height), 2 * r.size, traces)
            return FrameStream(*view.shape, None, self._composited(faces, len(final), view))
        composited = self._composited(faces, len(final), None)
        return FrameStream(self.footage.width, self.footage.height, None, composited)

    def _marked_faces(self, faces: Batches) -> Batches:
        """The generated crops, marked; a crop painted into a target frame's crop (`rows`) is marked
        where that face's own landmarks put it."""
        for start, batch in faces:
            marked = []
            for k, face in enumerate(batch):
                points = self.rows.landmarks[pingpong(start + k, len(self.rows))] if self.rows else None
                marked.append(self.marker.crop(face, start + k, points))
            yield start, marked

    def _composited(self, faces: Batches, count: int, view: FramePanel | None) -> Batches:
        footage = self.footage(count)
        rows = self.rows
        for start, batch in faces:
            out = []
            for k, face in enumerate(batch):
                index, frame = next(footage)
                if index != pingpong(start + k, len(rows)):
                    raise RuntimeError(f"footage frame {index} is not the one painted for {start + k}")
                mixed = composite_marked(frame, face, rows, index, start + k, self.marker)
                out.append(view.compose(start + k, frame, mixed) if view else mixed)
            yield start, out


def composite_marked(frame: np.ndarray, face: np.ndarray, rows: TargetRows, index: int, number: int,
                     marker: Marker | None) -> np.ndarray:
    """Output frame `number`: the generated `face` composited into target frame `index` (`frame`, by its
    row of `rows`), then marked over the face's region, where a reader aligns (`marker` None: unmarked).
    What a render and a live stream (models/rendering/stream.py) do to every full frame."""
    mixed, _ = composite(frame, face, rows.crop[index], rows.landmarks[index], rows.face_found[index])
    if marker is None:
        return mixed
    mixed = mixed if mixed is not frame else frame.copy()
    return marker.frame(mixed, rows.crop[index], face.shape[0], number, rows.landmarks[index])


def real_lips(shards: Path, real: str | None) -> np.ndarray | None:
    """The true lips of the corpus video the speech comes from, for the traces; None when there is
    none, or it has no face to trace (the traces then show the lips asked for alone)."""
    if not real:
        return None
    try:
        return read_target_rows(shards, real).lips
    except RenderError:
        return None
