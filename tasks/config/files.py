"""Small file helpers: atomic writes, a lock one process holds at a time, streamed hashing and safe
names."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
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


def temporary_name(target: str | Path) -> Path:
    """A hidden, unique name beside `target` that keeps its suffix (ffmpeg picks a muxer by it):
    `.<stem>.<12 hex>.tmp<suffix>`. Readers that glob the folder skip names starting with '.'."""
    target = Path(target)
    return target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Write `target` all at once or not at all (ARCHITECTURE.md, rules: writes are atomic).

        with atomic_path(out) as temp:   # a file or a folder of that name, written by the caller
            write(temp)
        # here `out` is the new one; had write() raised, `out` would be as it was and temp gone

    The parent folder is made. A folder replaces an old folder of the same name (the old one is
    renamed aside first, then removed), so a reader sees the old folder or the new, never half."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_name(target)
    try:
        yield temp
        if temp.is_dir() and target.is_dir():
            old = temporary_name(target)
            os.replace(target, old)
            os.replace(temp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, target)
    finally:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)


class Busy(RuntimeError):
    """Another process holds the lock; the message says which."""


@contextlib.contextmanager
def exclusive(lock: str | Path) -> Iterator[None]:
    """Hold the lock file `lock` for the block, or raise Busy at once when another process holds it.

    fcntl.flock on the file: the kernel drops it when its holder ends, however it ends, so a killed
    holder never leaves the lock taken. The file holds the holder's pid (for Busy's message) and is removed
    when the block ends; a process that opened it just before is not fooled, because a lock counts only on
    the file that still has the name."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise Busy(f"process {holder or '?'} holds {lock}") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed the file between our open and our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
