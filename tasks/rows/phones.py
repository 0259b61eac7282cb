"""Speaker-independent phone features: PocketSphinx's English acoustic model, which ships in its wheel,
decodes speech into phones (allphone search over its phone language model: the approach of Rhubarb Lip
Sync), and each video frame gets the share of each phone in the PHONE_WINDOW_S around its time.

Phones are what a mouth does, whoever speaks: the MFCC also say whose voice it is. With
`preprocess.phones` they join the frame table's audio features (tasks/rows/features.py), and the LSTM hears
them (ARCHITECTURE.md, Real voices; evals/speech_tries.py measured them).

Speech is decoded in absolute blocks of BLOCK_S seconds, each on its own (`block_track`), so that a file
read whole and the same file arriving in pieces (`PhoneBlocks`, models/rendering/speech.py: stream_lips)
get the same phones: a block's phones depend on its samples alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

# The acoustic model's phone set; anything else it outputs (noise models) counts as silence.
PHONES = ("SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
          "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
          "V", "W", "Y", "Z", "ZH")
MODEL_RATE = 16000  # the acoustic model's sample rate
STEP_S = 0.01  # PocketSphinx's frame step
PHONE_WINDOW_S = 0.03  # a video frame's phones: those within this of its time, either side
INDEX = {name: i for i, name in enumerate(PHONES)}
SILENT_RMS = 1e-4  # a 10 ms step quieter than this (-80 dBFS) is silence, whatever the decoder makes of it
BLOCK_S = 60  # seconds of speech decoded at once: memory and latency bounded, hour-long audio as well


def _decoder():
    from pocketsphinx import Config, Decoder, get_model_path

    model = Path(get_model_path()) / "en-us"
    config = Config(lm=None, hmm=str(model / "en-us"), allphone=str(model / "en-us-phone.lm.bin"),
                    beam=1e-20, pbeam=1e-20, lw=2.0, loglevel="ERROR")
    return Decoder(config)


def phone_track(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ceil(seconds / STEP_S) + 1,) int8: the index into PHONES of the phone at each 10 ms step."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    if sample_rate != MODEL_RATE:
        samples = resample_poly(samples, MODEL_RATE, sample_rate).astype(np.float32)
    track = np.zeros(len(samples) * 100 // MODEL_RATE + 1, np.int8)
    if not len(samples):
        return track
    decoder = _decoder()
    decoder.start_utt()
    pcm = (np.clip(np.nan_to_num(samples), -1, 1) * 32767).astype(np.int16)
    # Not as one whole utterance (full_utt=False): the cepstral mean is then updated as the speech goes, as
    # it must be live (PhoneStream), so the phones a live stream hears are those the LSTM trained on.
    decoder.process_raw(pcm.tobytes(), False, False)
    decoder.end_utt()
    _paint(track, decoder.seg())
    _gate(track, samples)
    return track


def _paint(track: np.ndarray, segments, offset: int = 0) -> None:
    """Write the decoder's segments (steps from `offset`) into `track` as indices into PHONES."""
    for segment in segments or ():  # None before the decoder has a hypothesis
        lo, hi = segment.start_frame - offset, segment.end_frame + 1 - offset
        if hi > 0:
            track[max(lo, 0) : hi] = INDEX.get(segment.word, 0)


def _gate(track: np.ndarray, samples: np.ndarray) -> None:
    """The decoder normalises loudness away: digital silence (padding, a TTS pause) would come out as a
    phone; steps of `samples` (at MODEL_RATE, track[0] their first) quieter than SILENT_RMS are silence."""
    hop = MODEL_RATE // 100
    steps = min(len(samples) // hop, len(track))
    rms = np.sqrt(np.mean(samples[: steps * hop].reshape(steps, hop).astype(np.float64) ** 2, axis=1))
    track[:steps][rms < SILENT_RMS] = 0


class PhoneStream:
    """Phones of live speech (models/rendering/stream.py): one decoder fed as the speech arrives, so each
    step is decoded once. The latest phones are the decoder's best guess so far (its partial
    segmentation), and may change as more speech comes; a frame painted `live.lookahead_ms` later sees
    them settled enough. The utterance restarts every RESTART_S seconds, bounding the decoder's search."""

    RESTART_S = float(BLOCK_S)  # as a file's blocks (block_track)
    HOP = MODEL_RATE // 100  # samples per step

    def __init__(self, sample_rate: int):
        self.rate, self.decoder = sample_rate, _decoder()
        self.decoder.start_utt()
        self.track = np.zeros(0, np.int8)  # steps from `first` on
        self.first = self.start = 0  # the track's first step; the current utterance's first step
        self.quiet = np.zeros(0, bool)  # per step of the utterance: below SILENT_RMS
        self.tail = np.zeros(0, np.float32)  # samples (at MODEL_RATE) short of a whole step
        self.dirty = False  # speech added since the track was last painted

    def add(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self.rate != MODEL_RATE:
            samples = resample_poly(samples, MODEL_RATE, self.rate).astype(np.float32)
        self._feed(samples)
        self.tail = np.concatenate([self.tail, samples])
        whole = len(self.tail) // self.HOP * self.HOP
        steps = self.tail[:whole].reshape(-1, self.HOP).astype(np.float64)
        self.quiet = np.concatenate([self.quiet, np.sqrt(np.mean(steps**2, axis=1)) < SILENT_RMS])
        self.tail, self.dirty = self.tail[whole:], True
        if len(self.quiet) >= self.RESTART_S / STEP_S:
            self.decoder.end_utt()
            self._update()
            self.start, self.quiet = self.start + len(self.quiet), np.zeros(0, bool)
            self.decoder.start_utt()
            self._feed(self.tail)  # the part step belongs to the new utterance's first step

    def _feed(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        pcm = (np.clip(np.nan_to_num(samples), -1, 1) * 32767).astype(np.int16)
        self.decoder.process_raw(pcm.tobytes(), False, False)

    def _update(self) -> None:
        """The current utterance's part of the track repainted from the decoder's segmentation so far."""
        self.dirty = False
        end = self.start + len(self.quiet) - self.first
        if end > len(self.track):
            self.track = np.concatenate([self.track, np.zeros(end - len(self.track), np.int8)])
        skip = max(self.first - self.start, 0)  # steps of the utterance already let go
        utterance = self.track[max(self.start - self.first, 0) :]
        utterance[:] = 0
        _paint(utterance, self.decoder.seg(), skip)
        utterance[self.quiet[skip : skip + len(utterance)]] = 0

    def forget(self, seconds: float) -> None:
        """Let go of the steps before `seconds` (from the first sample)."""
        if self.dirty:
            self._update()
        drop = min(int(seconds / STEP_S) - self.first, len(self.track))
        if drop > 0:
            self.track, self.first = self.track[drop:], self.first + drop

    def features(self, times: np.ndarray) -> np.ndarray:
        """`phone_features` at `times` (seconds from the first sample), of the phones heard so far."""
        if self.dirty:
            self._update()
        track = self.track if len(self.track) else np.zeros(1, np.int8)
        return phone_features(track, np.asarray(times, np.float64) - self.first * STEP_S)


def block_steps(sample_rate: int) -> int:
    """Samples in one decoded block (BLOCK_S seconds)."""
    return BLOCK_S * sample_rate


def block_track(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """`phone_track` of `samples` decoded block by block (BLOCK_S seconds each, from sample 0): a full
    block gives exactly BLOCK_S / STEP_S steps, the last one what it covers."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    size = block_steps(sample_rate)
    if len(samples) <= size:
        return phone_track(samples, sample_rate)
    steps = round(BLOCK_S / STEP_S)
    pieces = [phone_track(samples[lo : lo + size], sample_rate) for lo in range(0, len(samples), size)]
    return np.concatenate([p[:steps] for p in pieces[:-1]] + [pieces[-1]])


class PhoneBlocks:
    """`block_track` of audio that arrives in pieces: `add` each piece (consecutive samples), `finish` at
    the end; `features(times)` (seconds from the first sample) for times whose blocks are decoded
    (`ready_until`). Blocks before `forget(seconds)` are let go, so memory stays bounded."""

    def __init__(self, sample_rate: int):
        self.rate, self.size = sample_rate, block_steps(sample_rate)
        self.pending: list[np.ndarray] = []
        self.pending_samples, self.tracks, self.first, self.ended = 0, {}, 0, False

    @property
    def ready_until(self) -> float:
        """Seconds of speech whose phones are known (all of it once finished)."""
        return float("inf") if self.ended else len(self.tracks) * BLOCK_S + self.first * BLOCK_S

    def add(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        while len(samples):
            take = min(len(samples), self.size - self.pending_samples)
            self.pending.append(samples[:take])
            self.pending_samples += take
            samples = samples[take:]
            if self.pending_samples == self.size:
                self._decode()

    def finish(self) -> None:
        if self.pending_samples:
            self._decode()
        self.ended = True

    def _decode(self) -> None:
        block = self.first + len(self.tracks)
        self.tracks[block] = phone_track(np.concatenate(self.pending), self.rate)
        self.pending, self.pending_samples = [], 0

    def forget(self, seconds: float) -> None:
        while self.first < int(seconds // BLOCK_S) and self.first in self.tracks:
            del self.tracks[self.first]
            self.first += 1

    def features(self, times: np.ndarray) -> np.ndarray:
        """`phone_features` of the blocks held, at `times` (seconds from the stream's first sample)."""
        steps = round(BLOCK_S / STEP_S)
        blocks = sorted(self.tracks)
        track = np.concatenate([self.tracks[b][:steps] for b in blocks[:-1]] + [self.tracks[blocks[-1]]])
        return phone_features(track, np.asarray(times, np.float64) - self.first * BLOCK_S)


def phone_features(track: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), len(PHONES)) float32: per time (seconds), the share of each phone of `track` within
    PHONE_WINDOW_S of it (rows sum to 1)."""
    onehot = np.eye(len(PHONES), dtype=np.float32)[np.asarray(track, np.int64)]
    totals = np.concatenate([np.zeros((1, len(PHONES)), np.float32), np.cumsum(onehot, 0)])
    times = np.asarray(times, np.float64)
    lo = np.clip(np.round((times - PHONE_WINDOW_S) / STEP_S).astype(np.int64), 0, len(track) - 1)
    hi = np.maximum(np.clip(np.round((times + PHONE_WINDOW_S) / STEP_S).astype(np.int64) + 1, 1, len(track)),
                    lo + 1)
    return (totals[hi] - totals[lo]) / (hi - lo)[:, None]
