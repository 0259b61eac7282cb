"""Progress of a long command, shown one way everywhere (ARCHITECTURE.md, Progress).

A `Progress` is a `report(phase, done, total, budget=None)` callback and a context manager. A phase
(frames, steps, epochs, stages) keeps the total of its first report: the bar never grows; only a report
that says it is done (done == its total) ends the phase at that count. `budget`
(seconds) bounds a phase that a time budget may end before its total (adapt's fine-tuning): its time
left is the lesser of the rate's and the budget's, and its bar fills with whichever runs out first.

On a terminal: one rich bar per phase on the stream, with done/total, the time elapsed and left, gone
when the command ends. Anywhere else (a file, a pipe, a DVC log) plain lines,

    adapt: fine-tune 120/4000 steps, 1:02 elapsed, 5:58 left

at least every `every` seconds (15, or $REENACT_PROGRESS_SECONDS): a thread repeats the last state when
no report comes, so one long step or epoch still gives its line. Once the first has gone out, a phase's
start and end give theirs too. A command that ends sooner says nothing of its progress, so a short one's
output is its result or its one-line error alone.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, Self, TextIO

EVERY = 15.0  # seconds between plain lines, at most
EVERY_ENV = "REENACT_PROGRESS_SECONDS"


def every_from_env() -> float:
    """$REENACT_PROGRESS_SECONDS when it is a number of seconds above 0, else EVERY."""
    try:
        every = float(os.environ.get(EVERY_ENV, EVERY))
    except ValueError:
        return EVERY
    return every if math.isfinite(every) and every > 0 else EVERY


class Report(Protocol):
    """What a long job calls as it goes: `phase`'s `done` of `total` (None: not known)."""

    def __call__(self, phase: str, done: int, total: int | None, budget: float | None = None) -> None: ...


def clock(seconds: float | None) -> str:
    """`1:02`, `1:02:03`; `?` when not known."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Phase:
    """One phase's state: its fixed total, what is done, when it began and its time budget."""

    name: str
    total: int | None
    unit: str = ""
    budget: float | None = None
    done: int = 0
    first: int = 0  # done at the first report: the rate counts what was done since
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when it reached its total: its clock stops there

    def elapsed(self, now: float) -> float:
        return (self.ended or now) - self.started

    def left(self, now: float) -> float | None:
        """Seconds left: at the rate so far, and within the budget, whichever is less; None: not known."""
        elapsed, estimates = self.elapsed(now), []
        if self.total is not None and self.done >= self.total:
            return 0.0
        if self.total is not None and self.done > self.first and elapsed > 0:
            estimates.append((self.total - self.done) * elapsed / (self.done - self.first))
        if self.budget is not None:
            estimates.append(max(0.0, self.budget - elapsed))
        return min(estimates) if estimates else None

    def fraction(self, now: float) -> float:
        """How much of the bar is full: done of total, or the budget used when that is more."""
        done = self.done / self.total if self.total else 0.0
        used = self.elapsed(now) / self.budget if self.budget else 0.0
        return min(1.0, max(done, used))

    def count(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.done}/{'?' if self.total is None else self.total}{unit}"

    def line(self, now: float) -> str:
        """`fine-tune 120/4000 steps, 1:02 elapsed, 5:58 left`."""
        return f"{self.name} {self.count()}, {clock(self.elapsed(now))} elapsed, {clock(self.left(now))} left"


class Progress:
    """A `Report` that shows itself: a rich bar on a terminal, else plain `label: ...` lines on `stream`
    (default stderr) at least every `every` seconds. `units` names what each phase counts."""

    def __init__(self, label: str, stream: TextIO | None = None, every: float | None = None,
                 units: dict[str, str] | None = None, terminal: bool | None = None):
        self.label, self.stream, self.units = label, stream or sys.stderr, units or {}
        self.every = every_from_env() if every is None else every
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.phases: dict[str, Phase] = {}
        self.current: Phase | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._said = time.monotonic()  # when the last plain line went out (or when it began)
        self._spoken = False  # whether a plain line went out
        self._shown: dict[str, str] = {}  # each phase's last plain line, less its clock
        self._thread: threading.Thread | None = None
        self._bar = None  # the rich Progress on a terminal
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> Self:
        if self.terminal:
            self._open_bar()
        else:
            self._thread = threading.Thread(target=self._tick, name=f"progress-{self.label}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """The thread stopped and the bar gone; a phase left unfinished gets its last line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.current is not None:
            self._say(self.current, changed_only=True)

    def __call__(self, phase: str, done: int, total: int | None, budget: float | None = None) -> None:
        with self._lock:
            state = self.phases.get(phase)
            started = state is None
            if started:
                unit = self.units.get(phase, "")
                state = self.phases[phase] = Phase(phase, total, unit, budget, first=done)
            state.done = done
            if budget is not None:
                state.budget = budget
            if total is not None and done >= total and not started:
                state.total = done  # the job says it is done (its count came out other than planned)
            if state.total is not None and done >= state.total and state.ended is None:
                state.ended = time.monotonic()
            previous, self.current = self.current, state
        if self._bar is not None:
            self._draw(state)
            return
        if started and previous is not None and previous is not state:
            self._say(previous, changed_only=True)  # the phase before ends where it got to
        finished = state.total is not None and done >= state.total
        if (self._spoken and (started or finished)) or time.monotonic() - self._said >= self.every:
            self._say(state, changed_only=finished and not started)

    def _say(self, state: Phase, changed_only: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if changed_only and (not self._spoken or self._shown.get(state.name) == state.count()):
                return
            self._shown[state.name], self._said, self._spoken = state.count(), now, True
            print(f"{self.label}: {state.line(now)}", file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 4)):
            state = self.current
            if state is not None and time.monotonic() - self._said >= self.every:
                self._say(state)

    def _open_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:>10}"), BarColumn(), TextColumn("{task.fields[count]}"),
                   TimeElapsedColumn(), TextColumn("elapsed, {task.fields[left]} left"))
        console = Console(file=self.stream, force_terminal=True)
        self._bar = Progress(*columns, console=console, transient=True)
        self._bar.start()

    def _draw(self, state: Phase) -> None:
        now = time.monotonic()
        if state.name not in self._tasks:
            self._tasks[state.name] = self._bar.add_task(state.name, total=1.0, count="", left="?")
        self._bar.update(self._tasks[state.name], completed=state.fraction(now), count=state.count(),
                         left=clock(state.left(now)))


def silent(phase: str, done: int, total: int | None, budget: float | None = None) -> None:
    """A `Report` that shows nothing."""
