"""What training hands to evaluation and rendering, typed: the LSTM's artifact (paths.lstm) and
the generator's (paths.cgan), with the records they carry (models/records.py: the lip statistics,
the reference crops); and the one place where they, and training's resumable checkpoints, are
written and read.

On disk an artifact is a dict of tensors, lists, numbers and strings, loadable with
`torch.load(path, weights_only=True)`. In memory every array is a numpy array: float32 for the
normalisation stats and the noise, float64 for the lip statistics (the alignment's linear
algebra wants it). Files written before the format number (format 1) hold the same keys less
the generator's `condition`, and load as they are; a file that lacks a field, or whose weights
do not fit the network, is a CheckpointError of one line naming the file and the stage that
remakes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, get_args

import numpy as np
import torch
from torch import nn

from models.errors import CheckpointError
from models.records import LinearLips, LipsStats, References, Shape, as_array
from tasks.config.files import atomic_path

# 2: the generator's `condition`, and this number. 1: what came before, read as format 2.
FORMAT = 2
# A training checkpoint's (Checkpoint). 2: run_key, epoch, state, extra and this number. 1: the state
# objects and the extras side by side with run_key and epoch, told apart by the state's names.
CHECKPOINT_FORMAT = 2
# What the generator makes a face from besides the lips: "noise", the paper's DCGAN from one fixed
# noise vector; "frame", a U-Net from a frame of the target (the param cgan.condition).
Condition = Literal["noise", "frame"]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)
# The real-faces base that ships inside the package: an LSTM and a frame generator trained on the real
# fixtures whose licences allow sharing the weights (MODEL_CARD.md beside them; `dvc repro base`
# rebuilds them, flows/corpus.py). `reenact adapt` starts from it (adapt.base: shipped).
SHIPPED_BASE = Path(__file__).resolve().parent / "base"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """torch.save, atomically: a killed run never leaves half a file (ARCHITECTURE.md, rules)."""
    with atomic_path(path) as temp:
        torch.save(state, temp)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """A checkpoint read with weights_only=True (tensors, dicts, lists, numbers, strings), or None
    when there is no file. Raises CheckpointError, naming the file, when it cannot be read."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch reports a bad file as any of a dozen types
        reason = _reason(exc)
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


@dataclass(eq=False)
class Checkpoint:
    """A training stage's resumable checkpoint (`<checkpoints>/<stage>/last.pt`, models/training/run.py):
    the run key it was made under (models/common.py: run_key), the epochs done, the `state_dict()` of each
    object the loop resumes (networks, optimisers, the GradScaler) by name, and what else the loop keeps
    (`extra`: the LSTM's best epoch so far and its random state)."""

    run_key: str
    epoch: int  # epochs done
    state: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        save_checkpoint({"format": CHECKPOINT_FORMAT, "run_key": self.run_key, "epoch": self.epoch,
                         "state": self.state, "extra": self.extra}, path)

    @classmethod
    def load(cls, path: str | Path, names: Iterable[str] = ()) -> Checkpoint | None:
        """The checkpoint in `path`, None without a file. `names`: the state objects', which a checkpoint
        of format 1 keeps beside its other values (one lacking some holds none for them). CheckpointError
        of one line naming the file when it is unreadable, of a newer format, or lacks its key or epoch."""
        saved = load_checkpoint(path)
        if saved is None:
            return None
        version, names = saved.get("format", 1), set(names)
        if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: a checkpoint of format {version!r}, which this reenact (format "
                                  f"{CHECKPOINT_FORMAT}) does not read; delete it to train afresh")
        try:
            if version == 1:
                state = {name: saved[name] for name in names if name in saved}
                kept = names | {"run_key", "epoch"}
                extra = {key: value for key, value in saved.items() if key not in kept}
            else:
                state, extra = dict(saved["state"]), dict(saved["extra"])
            return cls(str(saved["run_key"]), int(saved["epoch"]), state, extra)
        except (KeyError, TypeError, ValueError) as exc:
            what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else _reason(exc)
            message = f"{path}: not a training checkpoint ({what}); delete it to train afresh"
            raise CheckpointError(message) from None


def _reason(exc: BaseException) -> str:
    """The exception's type and the first sentence of its first line: what fits in a one-line error."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].split('. ')[0][:160]}" if lines else type(exc).__name__


@dataclass(kw_only=True, eq=False)
class Artifact:
    """What both artifacts hold: the network's weights and constructor arguments, and how they were
    made (the data, the split, the stage's params). Subclasses name the stage that writes them."""

    STAGE: ClassVar[str]

    state_dict: dict[str, torch.Tensor]
    hparams: dict[str, Any]  # the network's constructor arguments
    epoch: int  # the epoch the weights are from, counted from 1
    lip_indices: list[int]  # the dlib points the lips are (preprocess.lip_indices)
    fps: float  # the frame table's
    split_by: str  # "video", "speaker" or "time" (models/training/data.py: split_corpus)
    val_videos: list[str]  # the videos held out, wholly or in part
    params: dict[str, Any]  # the stage's params section, as JSON
    params_digest: str
    data_fingerprint: str  # models/training/data.py: Corpus.fingerprint

    def to_disk(self) -> dict[str, Any]:
        """The dict saved: plain values and tensors, so that torch.load(weights_only=True) reads it."""
        saved: dict[str, Any] = {"format": FORMAT}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(np.array(value))
            elif item.name == "state_dict":
                value = {name: tensor.detach().cpu() for name, tensor in value.items()}
            saved[item.name] = value
        saved["split"] = {"by": saved.pop("split_by"), "val_videos": saved.pop("val_videos")}
        return saved

    @classmethod
    def _made(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The fields of this class, read from a saved dict."""
        return {
            "state_dict": dict(saved["state_dict"]),
            "hparams": dict(saved["hparams"]),
            "epoch": int(saved["epoch"]),
            "lip_indices": [int(i) for i in saved["lip_indices"]],
            "fps": float(saved["fps"]),
            "split_by": str(saved["split"]["by"]),
            "val_videos": [str(v) for v in saved["split"]["val_videos"]],
            "params": dict(saved["params"]),
            "params_digest": str(saved["params_digest"]),
            "data_fingerprint": str(saved["data_fingerprint"]),
        }

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> Self:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        save_checkpoint(self.to_disk(), path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """The artifact in `path`. FileNotFoundError without a file; CheckpointError for a file that
        is unreadable, of a newer format, or lacks a field."""
        saved = load_checkpoint(path)
        if saved is None:
            raise FileNotFoundError(f"{path}: no such checkpoint (run `dvc repro {cls.STAGE}`)")
        if int(saved.get("format", 1)) > FORMAT:
            raise CheckpointError(
                f"{path}: written by a newer reenact (format {saved['format']}; this one reads {FORMAT})"
            )
        try:
            return cls.from_disk(saved)
        except (KeyError, TypeError, ValueError) as exc:
            what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else _reason(exc)
            raise CheckpointError(f"{path}: an artifact of another format ({what}); retrain it: "
                                  f"`dvc repro {cls.STAGE}`") from None

    def network(
        self, cls: type[nn.Module], path: str | Path, device: str | torch.device = "cpu"
    ) -> nn.Module:
        """`cls` built from hparams with these weights, in eval mode on `device`; CheckpointError
        naming `path` (the file this came from) when they do not fit."""
        try:
            model = cls(**self.hparams)
            model.load_state_dict(self.state_dict)
        except (TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: its weights do not fit {cls.__name__} ({_reason(exc)}); "
                                  f"retrain it: `dvc repro {self.STAGE}`") from None
        return model.to(device).eval()


@dataclass(kw_only=True, eq=False)
class LstmArtifact(Artifact):
    """paths.lstm: audio -> lips (models/networks/lstm.py), with the stats its inputs and outputs are
    normalised with (models/networks/lstm.py: predict_lips)."""

    STAGE: ClassVar[str] = "train_lstm"

    context: int  # n: the window is 2n+1 frames
    audio_mean: np.ndarray  # (features,) float32
    audio_std: np.ndarray
    lips_mean: np.ndarray  # (LIPS_DIM,) float32: the train split's, what the lips are z-scored with
    lips_std: np.ndarray
    face_size: int
    feature_layout: list[str]  # tasks/rows/features.py: feature_layout: what it is fed, as the rows hold it
    val_loss: float  # the best epoch's
    # How it hears the phone shares of the layout (models/networks/lstm.py: heard_features): "visemes", or
    # "phones" as they are (artifacts written before it was kept); audio_mean/std are of what it hears.
    phone_classes: str = "phones"
    # The statistics of the lips it predicts for its training speech (voiced frames): how widely its mouth
    # swings on speech it knows, what a clip's own swing is judged against (models/training/lips.py:
    # source_stats). None in artifacts written before it was kept.
    output_stats: LipsStats | None = None
    # How much of the lips' motion beside the opening to trust (models/training/shape.py: measured on
    # voices it never heard; 1: all of it, as artifacts written before it was kept).
    shape_gain: float = 1.0
    # The linear map whose lips are mixed with the LSTM's (lstm.linear_share); None: the LSTM's alone, as
    # artifacts written before it was kept.
    linear: LinearLips | None = None

    @property
    def shape(self) -> Shape:
        """What final_lips scales the lips' shape with (models/records.py: Shape; models/training/lips.py:
        shaped_lips)."""
        return Shape(self.shape_gain, tuple(self.lip_indices))

    def to_disk(self) -> dict[str, Any]:
        saved = super().to_disk()
        if self.output_stats is None:
            del saved["output_stats"]
        else:
            saved["output_stats"] = self.output_stats.to_disk()
        if self.linear is None:
            del saved["linear"]
        else:
            saved["linear"] = self.linear.to_disk()
        return saved

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> LstmArtifact:
        output, linear = saved.get("output_stats"), saved.get("linear")
        return cls(
            **cls._made(saved),
            output_stats=LipsStats.from_disk(output) if output is not None else None,
            linear=LinearLips.from_disk(linear) if linear is not None else None,
            shape_gain=float(saved.get("shape_gain", 1.0)),
            phone_classes=str(saved.get("phone_classes", "phones")),
            context=int(saved["context"]),
            audio_mean=as_array(saved["audio_mean"]),
            audio_std=as_array(saved["audio_std"]),
            lips_mean=as_array(saved["lips_mean"]),
            lips_std=as_array(saved["lips_std"]),
            face_size=int(saved["face_size"]),
            feature_layout=[str(name) for name in saved["feature_layout"]],
            val_loss=float(saved["val_loss"]),
        )


@dataclass(kw_only=True, eq=False)
class CganArtifact(Artifact):
    """paths.cgan: lips -> face (models/networks/cgan.py), the stats its lips are z-scored with, and
    the lip statistics of every video it saw (rendering aligns a speaker's lips to the target's). The
    frame generator also carries, per video it trained on, its reference crops (`references`)."""

    STAGE: ClassVar[str] = "train_cgan"

    condition: Condition = "noise"  # which generator, and what it takes besides the lips
    noise: np.ndarray | None  # (noise_dim,) float32: the one noise vector of every frame ("noise")
    lips_mean: np.ndarray  # (LIPS_DIM,) float32
    lips_std: np.ndarray
    lips_stats: dict[str, LipsStats]  # by video id
    target_video: str  # the video the last epochs trained on alone
    face_size: int  # the crop's side
    references: dict[str, References] = field(default_factory=dict)  # by video id ("frame")
    # The frame generator was trained on references warped onto each frame (cgan.warp_references), so is
    # given them wherever it paints (models/networks/unet.py: chosen_references)
    warps_references: bool = False

    def to_disk(self) -> dict[str, Any]:
        saved = super().to_disk()
        saved["lips_stats"] = {video: stats.to_disk() for video, stats in self.lips_stats.items()}
        saved["references"] = {video: bank.to_disk() for video, bank in self.references.items()}
        if self.noise is None:
            del saved["noise"]
        return saved

    @classmethod
    def from_disk(cls, saved: dict[str, Any]) -> CganArtifact:
        condition = saved.get("condition", "noise")
        if condition not in CONDITIONS:
            raise ValueError(f"condition {condition!r} is not one of {', '.join(CONDITIONS)}")
        return cls(
            **cls._made(saved),
            condition=condition,
            noise=as_array(saved["noise"]) if condition == "noise" else None,
            lips_mean=as_array(saved["lips_mean"]),
            lips_std=as_array(saved["lips_std"]),
            lips_stats={str(video): LipsStats.from_disk(s) for video, s in saved["lips_stats"].items()},
            target_video=str(saved["target_video"]),
            face_size=int(saved["face_size"]),
            references={str(video): References.from_disk(bank)
                        for video, bank in saved.get("references", {}).items()},
            warps_references=bool(saved.get("warps_references", False)),
        )
