"""One way in: how every `python -m` stage reads its command line.

A stage is a plain function whose parameters are typer options; `run` parses the command line
into them and calls it. The options every stage shares are declared once here, so `--root`,
`--params`, `--override` and the locations (`--shards`, `--videos`, `--lstm`, `--cgan`) read and
print the same everywhere, `--help` works for each, and a bad params.yaml stops any stage with one
line naming the key. Locations default to the project layout (tasks/config/paths.py) under `--root`:

    def train(root: Root = DEFAULT_ROOT, params_file: ParamsFile = None, override: Overrides = None,
              shards: Shards = None) -> None:
        paths = stage_paths(root, shards=shards)
        params = stage_params(params_file or paths.params, override)
        ...

    def main(argv: list[str] | None = None) -> None:
        run(train, argv)
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.params import Params
from tasks.config.params_loader import ParamsError, load_params, parse_override
from tasks.config.paths import Paths

DEFAULT_ROOT = Path(".")
_LAYOUT = Paths.at("<root>")  # the default locations, as --help shows them

Root = Annotated[Path, typer.Option("--root", help="the project root; every location follows it")]
ParamsFile = Annotated[Path | None, typer.Option("--params", help=f"params (default: {_LAYOUT.params})")]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        metavar="KEY=VALUE",
        help="dotted-key override of params, e.g. lstm.epochs=3 (repeatable)",
    ),
]
def _located(what: str, field: str) -> typer.Option:
    """An optional location: None keeps the project layout's (tasks/config/paths.py), shown in --help."""
    return typer.Option(help=f"{what} (default: {getattr(_LAYOUT, field)})")


Shards = Annotated[Path | None, _located("the frame table folder", "shards")]
Videos = Annotated[Path | None, _located("the source videos, <video_id>.mp4", "videos")]
Lstm = Annotated[Path | None, _located("audio -> lips weights", "lstm")]
Cgan = Annotated[Path | None, _located("lips -> face weights", "cgan")]


def stage_paths(root: str | Path = DEFAULT_ROOT, **given: str | Path | None) -> Paths:
    """The project layout under `root`, with the locations given on the command line (None: not
    given) in place of the defaults."""
    return Paths.at(root, **given)


def parse_overrides(override: list[str] | None) -> dict[str, Any]:
    """['lstm.epochs=3', ...] -> {'lstm.epochs': 3, ...}, each value read as YAML."""
    return dict(parse_override(text) for text in override or [])


def stage_params(params_file: str | Path, override: list[str] | None = None) -> Params:
    """The params a stage runs with. A bad key or value prints one line naming it and exits 1."""
    try:
        return load_params(params_file, parse_overrides(override))
    except ParamsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def program_name(command: Callable[..., Any]) -> str:
    """`python -m package.module`, also when the module runs as __main__."""
    module = sys.modules.get(command.__module__)
    spec = getattr(module, "__spec__", None)
    return f"python -m {spec.name if spec is not None else command.__module__}"


def run(command: Callable[..., Any], argv: list[str] | None = None, prog: str | None = None) -> Any:
    """Parse `argv` (default: the process's arguments) into `command`'s options, call it and return
    what it returns. `--help` prints the options and exits 0; a usage error exits 2, bad params 1.
    The command's docstring is its help text."""
    result: dict[str, Any] = {}

    @functools.wraps(command)
    def call(*args: Any, **kwargs: Any) -> None:
        result["value"] = command(*args, **kwargs)

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(call)
    try:
        typer.main.get_command(app).main(args=argv, prog_name=prog or program_name(command))
    except SystemExit as exc:
        # click ends every run with SystemExit; a finished command's 0 is not the caller's concern.
        if exc.code not in (0, None) or "value" not in result:
            raise
    return result.get("value")
