"""Speech that arrives in pieces, cut into blocks of a fixed number of samples counted from its first sample:
what the phone decoder (tasks/rows/phones.py: PhoneBlocks) and Whisper's encoder (tasks/rows/whisper.py:
WhisperBlocks) each work on, so that a stream hears what a whole file does."""

from __future__ import annotations

import numpy as np


class SpeechBlocks:
    """`add` consecutive pieces of any size; each block of `size` samples, once complete, goes to `_block`
    (which a subclass defines), and what is left at the end goes there on `_flush`."""

    def __init__(self, size: int):
        self.size = size
        self.pending: list[np.ndarray] = []
        self.pending_samples = 0

    def add(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        while len(samples):
            take = min(len(samples), self.size - self.pending_samples)
            self.pending.append(samples[:take])
            self.pending_samples += take
            samples = samples[take:]
            if self.pending_samples == self.size:
                self._flush()

    def _flush(self) -> None:
        samples = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        self.pending, self.pending_samples = [], 0
        self._block(samples)

    def _block(self, samples: np.ndarray) -> None:
        raise NotImplementedError
