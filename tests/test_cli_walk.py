"""Every option and argument of every `reenact` command, given bad values one at a time (the others
good): never a traceback, always one line naming it (`error: ...`) or click's own usage error, and
exit status 2 for a bad argument (flows/cli_support.py). The commands run in this process through
click's test runner, on the kit's tiny trained project; none of them starts its work."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import typer.main
from render_kit import write_voice
from typer.testing import CliRunner

from flows.app_guard import AUTH_ENV
from flows.cli import app

GOOD_LOGIN = "editor:a long enough secret"
FILES = ["{folder}", "{missing}", "{garbage}"]
FOLDERS = ["{garbage}", "{missing}"]
# The bad values of each option, by its parameter name; every option of every command must be here.
BAD: dict[str, list[str]] = {
    "shards_dir": ["{garbage}", "{missing}", "{folder}"],
    "sheet": ["{folder}", "{garbage}/sheet.png"],
    "root": ["{garbage}"],
    "audio": ["", "{folder}", "{missing}", "{garbage}", "ftp://example.org/a.wav", "file:///etc/passwd"],
    "out": ["{folder}", "{garbage}/talk.mp4"],
    "target": ["", "../../etc", "no such target", "a/b", "x" * 300],
    "override": ["adapt.epochs=[", "seed", "=1", "nosuch.key=1", "render.size=7", "adapt.seconds=nan",
                 "render=3", "device=cuda:9", "render.output=movie",
                 *([] if torch.cuda.is_available() else ["device=cuda"])],
    "params_file": FILES,
    "lstm": FILES,
    "cgan": FILES,
    "shards": FOLDERS,
    "videos": FOLDERS,
    "video": FILES,
    "name": ["", "a b", "../x", "x" * 100],
    "seconds": ["nan", "inf", "-5", "0", "x"],
    "file": FILES,
    "host": ["", "no such host.invalid", "999.1.1.1"],
    "port": ["x", "-1", "0", "70000", "{busy}"],
    "auth_file": [*FILES, "{weak}"],
    "max_seconds": ["nan", "inf", "-5", "0", "x"],
    "max_upload_mb": ["x", "0", "-3"],
}
# Those the issue named: each must be exit status 2.
EXIT_2 = {("render", "out", "{folder}"), ("render", "override", "adapt.epochs=["),
          ("render", "override", "device=cuda:9"), ("render", "override", "device=cuda"),
          ("adapt", "override", "adapt.epochs=["),
          ("adapt", "seconds", "nan"), ("adapt", "seconds", "-5"), ("adapt", "seconds", "0"),
          ("app", "port", "70000"), ("app", "port", "-1"), ("app", "port", "{busy}")}


def commands() -> dict:
    return typer.main.get_command(app).commands


def test_the_walk_knows_every_option_of_every_command():
    names = {param.name for command in commands().values() for param in command.params
             if not getattr(param, "is_flag", False)}
    assert names <= set(BAD), f"options without bad values to try: {sorted(names - set(BAD))}"


@pytest.fixture(scope="module")
def places(kit, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("walk")
    (folder / "empty").mkdir()
    (folder / "garbage").write_bytes(b"\x00\xffnot what it should be\n" * 40)
    (folder / "weak.txt").write_text("editor:short\n")
    return {"folder": str(folder / "empty"), "missing": str(folder / "nowhere" / "x"),
            "garbage": str(folder / "garbage"), "weak": str(folder / "weak.txt"),
            "speech": str(write_voice(folder / "speech.wav", 0.5)), "work": str(folder)}


def good_arguments(command: str, kit, places: dict[str, str], port: int) -> dict[str, list[str]]:
    """Each command's arguments, all good, by parameter name (an argument's name maps to its value)."""
    p = kit.paths
    project = {"root": ["--root", str(p.root)]}
    return {
        "inspect": {"shards_dir": [str(p.shards)], **project},
        "render": {"audio": ["--audio", places["speech"]], "out": ["--out", f"{places['work']}/talk.mp4"],
                   **project},
        # Its clip is the kit's voice alone (no picture): adapt refuses it last, after every check.
        "adapt": {"video": [str(next(p.videos.glob("*.mp4")))], "name": ["--name", "me"],
                  "root": ["--root", f"{places['work']}/adapt"], "params_file": ["--params", str(p.params)],
                  "lstm": ["--lstm", str(p.lstm)], "cgan": ["--cgan", str(p.cgan)],
                  "override": ["--override", "adapt.base=project"]},
        "targets": {**project},
        "verify": {"file": [places["speech"]]},
        "app": {"host": ["--host", "127.0.0.1"], "port": ["--port", str(port)], **project},
        "live": {"target": ["--target", kit.target], "host": ["--host", "127.0.0.1"],
                 "port": ["--port", str(port)], **project},
        "version": {},
    }[command]


def walk(kit, places: dict[str, str]):
    """(command, parameter, value, argv) of every bad value of every parameter of every command."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        values = {**places, "busy": str(busy.getsockname()[1])}
        for name, command in commands().items():
            good = good_arguments(name, kit, places, port)
            for param in command.params:
                flag = getattr(param, "opts", [None])[0]
                positional = not flag.startswith("--")
                bad = [f"{flag}=maybe"] if getattr(param, "is_flag", False) else BAD[param.name]
                for value in bad:
                    given = value.format(**values) if "{" in value else value
                    mine = [given] if positional or given.startswith("--") else [flag, given]
                    others = [arg for key, args in good.items() if key != param.name for arg in args]
                    argv = [name, *mine, *others] if positional else [name, *others, *mine]
                    yield name, param.name, value, given, argv


def test_every_bad_value_of_every_option_is_one_line_and_no_traceback(kit, places, monkeypatch):
    monkeypatch.chdir(places["work"])
    runner = CliRunner()
    failures = []
    for command, param, value, given, argv in walk(kit, places):
        done = runner.invoke(app, argv, env={AUTH_ENV: GOOD_LOGIN, "COLUMNS": "200"})
        said = done.stderr.strip()
        lines = said.splitlines()
        usage = done.exit_code == 2 and ("Usage:" in said or "Invalid value" in said or "Error" in said)
        if command == "verify" and done.exit_code == 1:  # its verdict, on stdout: "FILE: unsigned ..."
            said = done.stdout.strip()
            lines = ["error: " + said] if len(said.splitlines()) == 1 else said.splitlines()
        problems = [
            "a traceback" if "Traceback" in done.output or not isinstance(done.exception, SystemExit | None)
            else "",
            "accepted" if done.exit_code == 0 else "",
            "not one line" if not usage and (len(lines) != 1 or not lines[0].startswith("error: ")) else "",
            "not exit 2" if (command, param, value) in EXIT_2 and done.exit_code != 2 else "",
            "does not name it" if given and not usage and given not in said and param not in said.replace(
                "-", "_") and Path(given).name not in said else "",
        ]
        if any(problems):
            failures.append(f"reenact {' '.join(argv)} -> {done.exit_code} "
                            f"{[p for p in problems if p]}: {said[-300:]!r} {done.exception!r}")
    assert not failures, "\n".join(failures)
