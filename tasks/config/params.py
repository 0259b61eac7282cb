"""What params.yaml holds, as typed models: a section per stage or concern (`PreprocessParams`,
`CganParams`, ...) in `Params`, each key's type, range and default, and the checks across keys; the
render outputs' names (`OUTPUTS`); a section's digest (`digest`, `rows_digest`). Reading a params file
and its overrides into them is tasks/config/params_loader.py's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.config.files import safe_id

# The side of the aligned face crop: the noise generator (models/networks/cgan.py) makes this size only;
# the frame generator (models/networks/unet.py) paints FACE_SIZES. preprocess.face_size is held to them
# here rather than found wrong after hours of preprocessing.
FACE_SIZE = 128
FACE_SIZES = (128, 256)


class _Section(BaseModel):
    # No NaN or infinity anywhere: a time budget of nan or inf would be no budget at all.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataParams(_Section):
    source: Literal["demo", "sources"] = "demo"
    sources_file: str = "data/sources/obama_weekly_addresses.tsv"
    max_height: int = Field(720, ge=144, le=4320)
    limit: int = Field(0, ge=0)
    retries: int = Field(2, ge=0, le=10)
    retry_delay_s: float = Field(2.0, ge=0)
    socket_timeout_s: float = Field(30.0, gt=0)


class DemoParams(_Section):
    clips: int = Field(6, ge=1, le=100)
    seconds: float = Field(10.0, ge=1.0, le=600.0)
    fps: int = Field(30, ge=10, le=60)
    size: int = Field(512, ge=256, le=1024)
    seed: int = 0


class PreprocessParams(_Section):
    fps: float = Field(30.0, gt=0, le=120)
    sample_rate: int = Field(16000, ge=8000, le=48000)
    face_size: int = FACE_SIZE
    detect_every: int = Field(10, ge=1)
    detect_width: int = Field(320, ge=64, le=2048)
    crop_smoothing: float = Field(0.6, ge=0.0, lt=1.0)
    lip_indices: list[int] = Field(default_factory=lambda: [48, 50, 52, 54, 56, 58, 62, 66])
    n_mfcc: int = Field(13, ge=1, le=40)
    n_mels: int = Field(40, ge=8, le=128)
    window_ms: float = Field(33.0, gt=5, le=200)
    phones: bool = True
    words: bool = False
    whisper: bool | Literal["window"] = "window"  # true: 30-s blocks; window: as a stream hears them
    jpeg_quality: int = Field(90, ge=10, le=100)
    row_group_size: int = Field(1024, ge=16)
    task_runner: Literal["threads", "processes", "dask"] = "threads"
    workers: int = Field(2, ge=1, le=256)
    dask_address: str = ""

    @field_validator("face_size")
    @classmethod
    def _generator_size(cls, value: int) -> int:
        if value not in FACE_SIZES:
            raise ValueError(f"must be one of {FACE_SIZES}: the sizes the generators make")
        return value

    @field_validator("lip_indices")
    @classmethod
    def _eight_lip_points(cls, value: list[int]) -> list[int]:
        if len(value) != 8:
            raise ValueError(f"needs exactly 8 landmark indices, got {len(value)}")
        if any(not 48 <= i <= 67 for i in value):
            raise ValueError("lip landmarks are indices 48..67 of dlib's 68 points")
        if len(set(value)) != 8:
            raise ValueError("indices must be distinct")
        return value


class SplitParams(_Section):
    by: Literal["video", "time", "auto", "speaker"] = "auto"
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    held_out: list[str] = Field(default_factory=list)
    speakers: dict[str, str] = Field(default_factory=dict)
    by_time: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _people_need_the_speaker_split(self) -> SplitParams:
        if (self.held_out or self.speakers or self.by_time) and self.by != "speaker":
            raise ValueError(f"split.held_out, split.speakers and split.by_time name people and videos: they "
                             f"need split.by: speaker (split.by is {self.by})")
        return self


class LstmParams(_Section):
    context: int = Field(5, ge=0, le=50)
    targets: Literal["corpus", "speaker"] = "speaker"
    phone_classes: Literal["visemes", "phones"] = "visemes"
    hidden: int = Field(64, ge=4, le=4096)
    layers: int = Field(1, ge=1, le=8)
    bidirectional: bool = True
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    input_noise: float = Field(0.3, ge=0.0, le=10.0)
    fc_hidden: int = Field(128, ge=4, le=4096)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    amp: bool = True
    # Folds of the training people whose LSTMs measure each training video's sound-picture offset, by
    # which its lips are moved before training (models/training/sync.py); 0: the clips as they are.
    sync_folds: int = Field(4, ge=0, le=16)
    # The share of the lips asked for from a linear map of every feature over the same window
    # (models/training/linear.py), the rest the LSTM's; 0: the LSTM's alone. Its ridge weight.
    linear_share: float = Field(0.5, ge=0.0, le=1.0)
    linear_weight: float = Field(1e5, gt=0.0)


class CganParams(_Section):
    condition: Literal["frame", "noise"] = "frame"
    noise_dim: int = Field(50, ge=1, le=1024)
    ngf: int = Field(16, ge=4, le=512)
    ndf: int = Field(16, ge=4, le=512)
    epochs: int = Field(3, ge=1)
    finetune_epochs: int = Field(1, ge=0)
    target_video: str = ""
    batch_size: int = Field(16, ge=1)
    lr_g: float = Field(5e-4, gt=0.0, le=1.0)
    lr_d: float = Field(2e-4, gt=0.0, le=1.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    real_label: float = Field(0.9, gt=0.5, le=1.0)
    l1_weight: float = Field(50.0, ge=0.0)
    adversarial_weight: float = Field(0.0, ge=0.0)
    mouth_weight: float = Field(4.0, ge=0.0)
    gradient_weight: float = Field(0.0, ge=0.0)  # frame: the gradients' L1 (unet_losses.py: gradient_l1)
    detail_weight: float = Field(0.0, ge=0.0)  # frame: fine-detail energy's L1 (unet_losses.py: detail_l1)
    discriminator_scales: int = Field(1, ge=1, le=4)  # frame: PatchGANs, each at half the last's size
    feature_matching_weight: float = Field(0.0, ge=0.0)  # frame: with adversarial_weight > 0
    references: int = Field(16, ge=1, le=256)
    warp_references: bool = False  # frame: each reference warped onto the frame's pose and lips first
    num_workers: int = Field(0, ge=0, le=64)
    val_frames: int = Field(256, ge=1)
    amp: bool = True

    @model_validator(mode="after")
    def _finetune_within_epochs(self) -> CganParams:
        if self.finetune_epochs > self.epochs:
            raise ValueError(f"finetune_epochs ({self.finetune_epochs}) exceeds epochs ({self.epochs})")
        return self


class EvaluateParams(_Section):
    max_frames: int = Field(300, ge=1)
    sync_seconds: float = Field(20.0, gt=0)
    composite_seconds: float = Field(5.0, gt=0)


# The render outputs, each a way of laying out the frames (models/rendering/layouts.py builds them): the one
# place their names are spelled; the CLI, the app and the render flow take them from here.
Output = Literal["full", "panel", "face", "face_panel"]
OUTPUTS: tuple[Output, ...] = get_args(Output)


class RenderParams(_Section):
    output: Output = "full"
    size: int = Field(256, ge=64, le=1024)
    target_video: str = ""
    align: Literal["clip", "corpus", "none"] = "clip"
    smooth_window: int = Field(3, ge=1, le=31)
    max_lips_distance: float = Field(6.0, ge=0.0)
    shape_gain: Literal["auto"] | Annotated[float, Field(ge=0.0, le=1.0)] = "auto"
    silence_db: float = Field(50.0, ge=0.0, le=120.0)
    chunk_seconds: float = Field(10.0, ge=1.0, le=600.0)
    batch_size: int = Field(16, ge=1, le=4096)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = "veryfast"
    crf: int = Field(18, ge=0, le=51)
    audio_kbps: int = Field(128, ge=16, le=512)

    @field_validator("size")
    @classmethod
    def _even_size(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (H.264 in yuv420p needs even sides)")
        return value

    @field_validator("smooth_window")
    @classmethod
    def _odd_window(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd: a centred window")
        return value


class AdaptTarget(_Section):
    """A person's clip to adapt the corpus generator to (`reenact adapt VIDEO --name NAME`)."""

    name: str = Field(min_length=1, max_length=64)
    video: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if safe_id(value) != value:
            raise ValueError("letters, digits, _ and - only (it names a folder and a video id)")
        return value


class AdaptParams(_Section):
    base: Literal["shipped", "project"] = "shipped"
    face_size: Literal["auto", 128, 256] = "auto"  # the target's crops (auto: by its face's width)
    min_seconds: float = Field(3.0, gt=0.0)
    seconds: float = Field(420.0, gt=0.0)
    epochs: int = Field(100, ge=1)
    references: int = Field(128, ge=1, le=256)
    ema: float = Field(0.98, ge=0.0, lt=1.0)
    mouth_weight: float = Field(1.0, ge=0.0)
    detail_weight: float = Field(200.0, ge=0.0)  # the fine-tuning's cgan.detail_weight, at 128 px
    detail_weight_256: float = Field(2400.0, ge=0.0)  # the same at 256 px (a finer band, less energy)
    gradient_weight: float = Field(0.0, ge=0.0)  # the fine-tuning's cgan.gradient_weight
    warp_references: bool = True  # the fine-tuning's cgan.warp_references
    max_yaw: float = Field(25.0, gt=0.0, le=90.0)
    min_face_px: float = Field(80.0, ge=0.0)
    min_sharpness: float = Field(40.0, ge=0.0)
    footage_share: float = Field(0.25, ge=0.0, le=1.0)
    targets: list[AdaptTarget] = Field(default_factory=list)


class ProvenanceParams(_Section):
    key_dir: str = ""
    label: bool = False
    label_text: str = Field("AI-generated", min_length=1, max_length=40)


class LiveParams(_Section):
    """`reenact live` and the app's Live tab (models/rendering/stream.py; ARCHITECTURE.md, Live)."""

    lookahead_ms: float = Field(200.0, ge=0.0, le=2000.0)
    window_ms: float = Field(450.0, ge=100.0, le=5000.0)
    max_batch: int = Field(3, ge=1, le=64)
    warmup_seconds: float = Field(2.0, ge=0.0, le=60.0)
    level_seconds: float = Field(30.0, ge=1.0, le=600.0)
    footage_mb: int = Field(1024, ge=0, le=65536)
    jpeg_quality: int = Field(80, ge=10, le=100)
    threads: int = Field(1, ge=1, le=256)


class Params(_Section):
    seed: int = 0
    device: str = "auto"
    data: DataParams = DataParams()
    demo: DemoParams = DemoParams()
    preprocess: PreprocessParams = PreprocessParams()
    split: SplitParams = SplitParams()
    lstm: LstmParams = LstmParams()
    cgan: CganParams = CganParams()
    render: RenderParams = RenderParams()
    evaluate: EvaluateParams = EvaluateParams()
    adapt: AdaptParams = AdaptParams()
    provenance: ProvenanceParams = ProvenanceParams()
    live: LiveParams = LiveParams()

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be auto, cpu, cuda or cuda:N")

    @model_validator(mode="after")
    def _noise_generator_size(self) -> Params:
        if self.cgan.condition == "noise" and self.preprocess.face_size != FACE_SIZE:
            raise ValueError(f"preprocess.face_size must be {FACE_SIZE} with cgan.condition: noise "
                             f"(the noise generator makes {FACE_SIZE}x{FACE_SIZE} faces only)")
        return self


def digest(section: BaseModel, exclude: frozenset[str] = frozenset()) -> str:
    """A short stable hash of a params section (less the `exclude` keys): outputs made with
    other params are rebuilt."""
    text = json.dumps(section.model_dump(mode="json", exclude=set(exclude)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# How preprocessing runs, not what it writes: shards made with other runner settings are the
# same shards, so these are left out of their key.
RUNNER_SETTINGS = frozenset({"task_runner", "workers", "dask_address"})


def rows_digest(params: PreprocessParams) -> str:
    """The digest of the preprocess params that shape the frame table: all but RUNNER_SETTINGS."""
    return digest(params, exclude=RUNNER_SETTINGS)
