"""Signals end a command the way an error does (ARCHITECTURE.md, rules: writes are atomic).

By default SIGTERM and SIGHUP end Python at once: no `finally` runs, so a render killed while encoding
left its hidden `.NAME.*.tmp.mp4` beside the output and its temporary folder behind. Within
`stop_on_signals()` they, and SIGINT, raise `Stopped` in the main thread instead, so every
`atomic_path`, temporary folder, lock and child process on the way out is cleaned up as for any error.
A signal that comes while the command is already unwinding an exception does not interrupt that
clean-up: `Stopped` is raised once the block has ended.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(SystemExit):
    """A signal ended the command; its exit status is 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block (in the main thread), SIGTERM, SIGINT and SIGHUP raise Stopped; the handlers
    before it are put back at its end."""
    caught: list[int] = []

    def handler(signum: int, frame) -> None:
        if caught:
            return  # the first one is on its way out; a second must not cut its clean-up short
        caught.append(signum)
        if sys.exc_info()[1] is None:  # else an exception is unwinding: Stopped follows when it is done
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    except BaseException:
        if not caught:
            raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    if caught:
        raise Stopped(caught[0])
