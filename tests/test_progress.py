"""tasks/config/progress.py: a fixed total per phase, the time left, and plain lines at least every `every`
seconds when the output is not a terminal (a thread speaks when no report comes; a job shorter than that
says nothing); a rich bar on one."""

from __future__ import annotations

import io
import re
import time

from tasks.config.progress import Phase, Progress, clock

LINE = re.compile(r"^job: (?P<phase>\S+) (?P<done>\d+)/(?P<total>\d+|\?)(?: (?P<unit>\w+))?, "
                  r"(?P<elapsed>[\d:]+) elapsed, (?P<left>[\d:]+|\?) left$")


def lines(stream: io.StringIO) -> list[re.Match]:
    said = stream.getvalue().splitlines()
    parsed = [LINE.match(line) for line in said]
    assert all(parsed), said
    return parsed


def test_plain_lines_keep_the_first_total_and_come_while_nothing_reports():
    stream = io.StringIO()
    with Progress("job", stream, every=0.2, units={"steps": "steps"}) as progress:
        progress("steps", 0, 10)
        progress("steps", 1, 10)
        progress("steps", 2, 12)  # a later total does not move the bar's
        time.sleep(0.7)  # one long step: the thread says where it is
        progress("steps", 10, 10)
    said = lines(stream)
    assert said[0]["done"] == "2" and said[-1]["done"] == "10", "the first line after `every` seconds"
    assert {m["total"] for m in said} == {"10"} and {m["unit"] for m in said} == {"steps"}
    assert sum(m["done"] == "2" for m in said) >= 2, "lines while no report came"
    assert said[-1]["left"] == "0:00"
    assert len(said) < 10


def test_a_phase_ends_where_it_got_when_the_next_begins_and_unknown_totals_say_so(monkeypatch):
    stream = io.StringIO()
    with Progress("job", stream, every=60) as progress:  # a short job says nothing
        progress("a", 0, 100)
        progress("a", 100, 100)
    assert stream.getvalue() == ""
    monkeypatch.setenv("REENACT_PROGRESS_SECONDS", "0.3")
    with Progress("job", stream) as progress:
        progress("a", 0, 100)
        time.sleep(0.45)
        progress("a", 40, 100)
        progress("b", 1, None)
        progress("b", 2, None)
    said = [(m["phase"], m["done"], m["total"]) for m in lines(stream)]
    assert said == [("a", "0", "100"), ("a", "40", "100"), ("b", "1", "?"), ("b", "2", "?")]


def test_time_left_from_the_rate_and_within_a_budget():
    phase = Phase("fine-tune", total=100, first=0, budget=None)
    phase.started -= 10.0
    phase.done = 20
    now = time.monotonic()
    assert abs(phase.left(now) - 40.0) < 0.5  # 20 steps in 10 s: 80 more take 40 s
    assert abs(phase.fraction(now) - 0.2) < 1e-6
    phase.budget = 25.0
    assert abs(phase.left(now) - 15.0) < 0.5, "the budget ends it first"
    assert abs(phase.fraction(now) - 0.4) < 0.01, "the bar fills with the budget used"
    assert Phase("x", total=None).left(now) is None
    assert (clock(None), clock(62), clock(3723)) == ("?", "1:02", "1:02:03")


def test_on_a_terminal_a_bar_with_the_count_and_the_time_left():
    stream = io.StringIO()
    with Progress("job", stream, units={"frames": "frames"}, terminal=True) as progress:
        progress("frames", 0, 50)
        time.sleep(0.05)
        progress("frames", 25, 50)
        progress._bar.refresh()
    drawn = stream.getvalue()
    assert "25/50 frames" in drawn and "left" in drawn and "-:--:--" not in drawn
