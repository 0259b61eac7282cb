"""The plumbing both training stages share, so that each stage's `train` reads as its loop:
the resumable checkpoint (`<checkpoints>/<stage>/last.pt`), DVCLive (`<dvclive>/<stage>`), the
artifact, each where the project's Paths put it, and progress (tasks/config/progress.py): epochs done of
the run's total with the time left, a bar on a terminal, else a line at least every 15 s however long
an epoch is, beside the line each epoch prints (`epoch_line`).

Only the main process (rank 0 under torchrun) logs to DVCLive and writes files; every process
resumes from the same checkpoint.
"""

from __future__ import annotations

import sys
import time
import weakref
from pathlib import Path
from typing import Any

import torch

from models.artifacts import Artifact, Checkpoint
from models.training.data import Corpus
from models.training.split import Split
from tasks.config.params import digest
from tasks.config.paths import Paths
from tasks.config.progress import Progress, clock


class TrainingRun:
    """One training stage's run: resumed from `paths.checkpoint_dir(stage) / "last.pt"` when that
    was made with the same run key, logged to DVCLive in `paths.live_dir(stage)`, checkpointed every
    epoch, finished with an artifact.

    `state` names the objects whose `state_dict()` the checkpoint keeps (models, optimisers, the
    GradScaler): models/artifacts.py: Checkpoint.state. `resumed` is the checkpoint resumed, or None.
    `epochs`: the run's total, which its progress counts to (None: shown as not known).
    """

    def __init__(self, stage: str, key: str, state: dict[str, Any], paths: Paths, is_main: bool = True,
                 epochs: int | None = None):
        self.stage, self.key, self.state, self.is_main = stage, key, state, is_main
        self.epochs = epochs
        self.last = paths.checkpoint_dir(stage) / "last.pt"
        self.resumed = self._resume()
        self.start_epoch = self.resumed.epoch if self.resumed is not None else 0
        self.live = None
        self.progress: Progress | None = None
        if is_main:
            self.progress = Progress(stage, stream=sys.stdout, units={"training": "epochs"}).__enter__()
            weakref.finalize(self, self.progress.close)  # a run dropped unfinished stops its lines too
            self.progress("training", self.start_epoch, epochs)
            from dvclive import Live  # imports DVC: only the process that logs pays for it

            self.live = Live(str(paths.live_dir(stage)), resume=self.start_epoch > 0, report=None,
                             dvcyaml=False, save_dvc_exp=False)

    def say(self, text: str) -> None:
        if self.is_main:
            print(f"{self.stage}: {text}")

    def _resume(self) -> Checkpoint | None:
        """The last checkpoint, loaded into `state`, when it belongs to this run; else None."""
        checkpoint = Checkpoint.load(self.last, self.state)
        if checkpoint is None:
            return None
        if checkpoint.run_key != self.key:
            self.say(f"{self.last} was made with other params, data or code; starting afresh")
            return None
        if not all(_fits(obj, checkpoint.state.get(name)) for name, obj in self.state.items()):
            self.say(f"{self.last} holds a network of another shape (the code changed); starting afresh")
            return None
        for name, obj in self.state.items():
            if checkpoint.state[name]:  # empty when saved by a disabled (CPU) GradScaler
                obj.load_state_dict(checkpoint.state[name])
        self.say(f"resuming from {self.last} after epoch {checkpoint.epoch}")
        return checkpoint

    def restored(self, name: str, default: Any = None) -> Any:
        """What `save(..., name=value)` kept in the checkpoint this run resumed from, else `default`."""
        return default if self.resumed is None else self.resumed.extra.get(name, default)

    def summarise(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.live.summary[name] = value

    def log(self, epoch: int, metrics: dict[str, float], summary: dict[str, Any] | None = None) -> None:
        """One epoch's metrics (and summary values) as DVCLive step `epoch`."""
        self.live.step = epoch
        for name, value in metrics.items():
            self.live.log_metric(name, value)
        self.summarise(summary or {})
        self.live.next_step()

    def save(self, epoch: int, **extra: Any) -> None:
        """The resumable checkpoint after `epoch` (counted from 0): every state object, and `extra`."""
        state = {name: obj.state_dict() for name, obj in self.state.items()}
        Checkpoint(self.key, epoch + 1, state, extra).save(self.last)
        if self.progress is not None:
            self.progress("training", epoch + 1, self.epochs)

    def finish(self, artifact: Artifact, out: Path) -> None:
        if self.progress is not None:
            self.progress.close()
        self.live.end()
        artifact.save(out)


def epoch_line(stage: str, epoch: int, epochs: int, metrics: dict[str, float], started: float,
               note: str = "") -> str:
    """`lstm: epoch 3/30 train_loss 0.4123 ... (1.2s, ~0:33 left)`: what a stage prints after each epoch
    (the time left: the epochs to come at this epoch's pace)."""
    values = " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    took = time.perf_counter() - started
    left = clock(took * (epochs - epoch - 1))
    return f"{stage}: epoch {epoch + 1}/{epochs}{note} {values} ({took:.1f}s, ~{left} left)"


def made_from(section: Any, corpus: Corpus, split: Split) -> dict[str, Any]:
    """What every artifact records of how it was made (models/artifacts.py: Artifact's fields): the
    data, the split and the stage's params."""
    return {
        "lip_indices": [int(i) for i in corpus.meta["lip_indices"]],
        "fps": float(corpus.meta["fps"]),
        "split_by": split.by,
        "val_videos": split.val_videos(),
        "params": section.model_dump(mode="json"),
        "params_digest": digest(section),
        "data_fingerprint": corpus.fingerprint(),
    }


def _fits(obj: Any, saved: dict | None) -> bool:
    """Whether a module's saved state has its parameters' names and shapes (other objects: always, when
    the checkpoint holds one)."""
    if saved is None:
        return False
    if not isinstance(obj, torch.nn.Module):
        return True
    own = obj.state_dict()
    return own.keys() == saved.keys() and all(own[key].shape == saved[key].shape for key in own)
