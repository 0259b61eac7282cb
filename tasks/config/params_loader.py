"""params.yaml, loaded into the typed models of tasks/config/params.py.

One loader for every entry point (`load_params`, with `--override KEY=VALUE`s read by `parse_override`):
an unknown key, a wrong type or an out-of-range value stops the run with a `ParamsError` whose message
names the key and the value; an `OverrideError` when the bad key or value is an override's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tasks.config.params import Params


class ParamsError(ValueError):
    """params.yaml (or an override) holds an unknown key or a bad value."""


class OverrideError(ParamsError):
    """An `--override KEY=VALUE` is bad: not KEY=VALUE, not YAML, an unknown key or a bad value. It is an
    argument of the command, so the CLI says so as a usage error (exit 2)."""


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if not item["loc"]:  # a check across sections: its message names the keys
            lines.append(item["msg"].removeprefix("Value error, "))
        elif item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}' (value {item['input']!r})")
        else:
            lines.append(f"bad value for '{key}': {item['input']!r}: {item['msg']}")
    return "; ".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """'preprocess.fps=25' -> ('preprocess.fps', 25), the value read as YAML; OverrideError naming it
    when it is not KEY=VALUE or its value is not YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise OverrideError(f"override {text!r} is not KEY=VALUE")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise OverrideError(f"override {text!r}: the value is not YAML ({problem})") from None


def _apply(raw: dict, key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise OverrideError(f"override '{key}': '{part}' is not a section")
        node = child
    node[leaf] = value


def load_params(path: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """Read a params file (the project's is `Paths.params`, tasks/config/paths.py; missing keys take their
    defaults) and apply dotted-key overrides."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except OSError as exc:  # a folder, no permission
        raise ParamsError(f"{path}: cannot read the params file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a params file (not text)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        _apply(raw, key, value)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        overridden = [key for key in overrides or {} if any(_within(item["loc"], key) for item in errors)]
        if overridden:
            raise OverrideError(f"override {', '.join(overridden)}: {_describe(exc)}") from None
        raise ParamsError(f"{path}: {_describe(exc)}") from None


def _within(loc: tuple, key: str) -> bool:
    """Whether an error at `loc` lies in the overridden `key` (or holds it: a check across a section)."""
    parts, at = key.split("."), [str(part) for part in loc]
    return at[: len(parts)] == parts or (bool(at) and parts[: len(at)] == at)
