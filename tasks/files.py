"""Small file helpers: streamed hashing and safe names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_ENDS = re.compile(r"^[^A-Za-z0-9_-]+|[^A-Za-z0-9_-]+$")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_id(text: str, max_len: int = 64) -> str:
    """A video id made of [A-Za-z0-9_-] only; never empty, never a path."""
    cleaned = _UNSAFE.sub("_", _UNSAFE_ENDS.sub("", text))[:max_len]
    return cleaned or "v_" + hashlib.sha1(text.encode()).hexdigest()[:12]
