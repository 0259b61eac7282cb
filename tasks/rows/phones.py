"""Speaker-independent phone features: PocketSphinx's English acoustic model, which ships in its wheel,
decodes speech into phones (allphone search over its phone language model: the approach of Rhubarb Lip
Sync), and each video frame gets the share of each phone in the PHONE_WINDOW_S around its time.

Phones are what a mouth does, whoever speaks: the MFCC also say whose voice it is. With
`preprocess.phones` they join the frame table's audio features (tasks/rows/features.py), and the LSTM hears
them (ARCHITECTURE.md, Real voices; evals/speech_tries.py measured them).

With `preprocess.words` the same speech is also decoded into English words (the wheel's language model and
dictionary) and their phones (`word_phone_track`), 40 more shares beside the phone loop's; live speech has
no words (they need the utterance's end), so a live stream hears the phone loop's in their place.

Speech is decoded in absolute blocks of BLOCK_S seconds, each on its own (`block_track`), so that a file
read whole and the same file arriving in pieces (`PhoneBlocks`, models/rendering/speech.py: stream_lips)
get the same phones: a block's phones depend on its samples alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from tasks.rows.blocks import SpeechBlocks

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


def _word_decoder():
    from pocketsphinx import Config, Decoder, get_model_path

    model = Path(get_model_path()) / "en-us"
    # The decoder's own search, both passes: one pass alone (0.3 s a second of speech against 0.5 s), and
    # more so pruned harder (0.2 s), gave voices never heard less (evals/speech_tries.py; docs/results.md)
    config = Config(hmm=str(model / "en-us"), lm=str(model / "en-us.lm.bin"),
                    dict=str(model / "cmudict-en-us.dict"), loglevel="ERROR")
    return Decoder(config)


def _prepared(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(the samples at MODEL_RATE, an empty track of their steps, their 16-bit PCM) for a decoder."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    if sample_rate != MODEL_RATE:
        samples = resample_poly(samples, MODEL_RATE, sample_rate).astype(np.float32)
    track = np.zeros(len(samples) * 100 // MODEL_RATE + 1, np.int8)
    return samples, track, (np.clip(np.nan_to_num(samples), -1, 1) * 32767).astype(np.int16).tobytes()


def word_phone_track(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """`phone_track` by way of words: the speech decoded into English words with the wheel's language model
    and dictionary (what Rhubarb Lip Sync does), then aligned to their phones in a second pass. A word the
    decoder mishears is still a run of phones that fit the sound together, where the phone loop
    (`phone_track`) picks each phone on its own. A whole file only: the words need the utterance's end."""
    samples, track, pcm = _prepared(samples, sample_rate)
    if not len(samples):
        return track
    decoder = _word_decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)
    decoder.end_utt()
    if decoder.hyp() is None or not decoder.hyp().hypstr.strip():
        return track
    words = [(w.word, w.start_frame, w.end_frame + 1) for w in decoder.seg()]
    try:
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, False, True)
        decoder.end_utt()
        phones = [(p.name, p.start, p.start + p.duration) for p in decoder.get_alignment().phones()]
    except RuntimeError:  # the second pass found no path (noise, not speech): each word's phones evenly
        phones = _spread(words, decoder.lookup_word)
    for name, start, end in phones:
        track[max(start, 0) : end] = INDEX.get(name, 0)
    _gate(track, samples)
    return track


def _spread(words, pronounce) -> list[tuple[str, int, int]]:
    """(phone, first step, end step) of each word (word, first step, end step) heard: its dictionary
    phones (`pronounce(word)`: "HH AH L OW", None for a filler or silence) sharing its steps evenly."""
    phones = []
    for word, start, end in words:
        names = (pronounce(word) or "").split()
        edges = np.linspace(start, end, len(names) + 1).round().astype(int)
        phones += [(name, int(a), int(b)) for name, a, b in zip(names, edges[:-1], edges[1:])]
    return phones


def phone_track(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(ceil(seconds / STEP_S) + 1,) int8: the index into PHONES of the phone at each 10 ms step."""
    samples, track, pcm = _prepared(samples, sample_rate)
    if not len(samples):
        return track
    decoder = _decoder()
    decoder.start_utt()
    # Not as one whole utterance (full_utt=False): the cepstral mean is then updated as the speech goes, as
    # it must be live (PhoneStream), so the phones a live stream hears are those the LSTM trained on.
    decoder.process_raw(pcm, False, False)
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


def block_track(samples: np.ndarray, sample_rate: int, words: bool = False) -> np.ndarray:
    """`phone_track` (`words`: `word_phone_track`) of `samples` decoded block by block (BLOCK_S seconds
    each, from sample 0): a full block gives exactly BLOCK_S / STEP_S steps, the last one what it covers."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    decode = word_phone_track if words else phone_track
    size = block_steps(sample_rate)
    if len(samples) <= size:
        return decode(samples, sample_rate)
    steps = round(BLOCK_S / STEP_S)
    pieces = [decode(samples[lo : lo + size], sample_rate) for lo in range(0, len(samples), size)]
    return np.concatenate([p[:steps] for p in pieces[:-1]] + [pieces[-1]])


def shares_of(samples: np.ndarray, sample_rate: int, times: np.ndarray,
              kinds: tuple[bool, ...]) -> np.ndarray:
    """(len(times), 40 * len(kinds)): `phone_features` of `samples` decoded block by block, once per kind
    (False: the phone loop, True: the words), side by side."""
    if not kinds:
        return np.zeros((len(times), 0), np.float32)
    return np.concatenate([phone_features(block_track(samples, sample_rate, words), times)
                           for words in kinds], 1)


class PhoneBlocks(SpeechBlocks):
    """`shares_of` audio that arrives in pieces: `add` each piece (consecutive samples), `finish` at
    the end; `features(times)` (seconds from the first sample) for times whose blocks are decoded
    (`ready_until`). Blocks before `forget(seconds)` are let go, so memory stays bounded."""

    def __init__(self, sample_rate: int, kinds: tuple[bool, ...] = (False,)):
        super().__init__(block_steps(sample_rate))
        self.rate, self.kinds = sample_rate, kinds
        self.tracks, self.first, self.ended = {}, 0, False

    @property
    def ready_until(self) -> float:
        """Seconds of speech whose phones are known (all of it once finished)."""
        return float("inf") if self.ended else len(self.tracks) * BLOCK_S + self.first * BLOCK_S

    def finish(self) -> None:
        if self.pending_samples:
            self._flush()
        self.ended = True

    def _block(self, samples: np.ndarray) -> None:
        self.tracks[self.first + len(self.tracks)] = [
            (word_phone_track if words else phone_track)(samples, self.rate) for words in self.kinds]

    def forget(self, seconds: float) -> None:
        while self.first < int(seconds // BLOCK_S) and self.first in self.tracks:
            del self.tracks[self.first]
            self.first += 1

    def features(self, times: np.ndarray) -> np.ndarray:
        """`shares_of` the blocks held, at `times` (seconds from the stream's first sample)."""
        steps = round(BLOCK_S / STEP_S)
        blocks = sorted(self.tracks)
        times = np.asarray(times, np.float64) - self.first * BLOCK_S
        shares = []
        for k in range(len(self.kinds)):
            track = np.concatenate([self.tracks[b][k][:steps] for b in blocks[:-1]]
                                   + [self.tracks[blocks[-1]][k]])
            shares.append(phone_features(track, times))
        return np.concatenate(shares, 1)


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
