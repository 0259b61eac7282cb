"""README.md stays a short guide that tells the truth: its length, defaults, links and make targets.

How the README names a default: a backticked `section.key: value`, YAML's own spelling of that line of
params.yaml (`cgan.condition: frame`). Written so, it claims to be the default, and this test compares
the value with params.yaml's (as YAML values: `50.0` and `50` agree, `false` and `0` do not). Any other
setting is written as an override, `section.key=value` (`cgan.condition=noise`), as `dvc exp run -S` and
`--override` take it. Every params key the README names, in either form or bare, must exist.

Fast: reads text files and params.yaml, imports nothing of the project.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 300
MISSING = object()

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")  # a span may wrap onto the next line, as in Markdown
KEY = r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*"
# a whole inline span `section.key: value`: a default, by the README's convention
DEFAULT = re.compile(rf"^({KEY}): (\S.*)$")
# `section.key=value` or a bare `section.key` in an inline span; -S / --override key=... anywhere in code
NAMED = re.compile(rf"^({KEY})(?:=.*)?$")
OVERRIDE = re.compile(rf"(?:-S|--override)\s+['\"]?({KEY})=")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]*\w)")
MAKE = re.compile(r"(?<![\w/.-])make ([a-z][\w-]*)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def load_params(path: Path = ROOT / "params.yaml") -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def lookup(params: dict[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def same_value(a: Any, b: Any) -> bool:
    """Equal as YAML values: numbers by value (3 and 3.0), otherwise the same type and value."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return a == b
    return type(a) is type(b) and a == b


def code_and_prose(text: str) -> tuple[list[str], str]:
    """(the fenced code blocks, the text without them)."""
    return FENCE.findall(text), FENCE.sub("", text)


def inline_spans(text: str) -> list[str]:
    return [" ".join(span.split()) for span in INLINE.findall(code_and_prose(text)[1])]


def named_defaults(text: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every `section.key: value` span whose section is one of params.yaml's: (key, value as written)."""
    found = []
    for span in inline_spans(text):
        match = DEFAULT.match(span.strip())
        if match and match.group(1).split(".")[0] in params:
            found.append((match.group(1), match.group(2)))
    return found


def default_mismatches(text: str, params: dict[str, Any]) -> list[str]:
    problems = []
    for key, written in named_defaults(text, params):
        actual = lookup(params, key)
        if actual is MISSING:
            problems.append(f"`{key}: {written}`: params.yaml has no {key}")
        elif not same_value(yaml.safe_load(written), actual):
            problems.append(f"`{key}: {written}`: params.yaml has {key}: {actual!r}")
    return problems


def named_keys(text: str, params: dict[str, Any]) -> set[str]:
    """Every params key the text names: in an inline span (bare, `=`, or `:` form) or as -S/--override."""
    code, _ = code_and_prose(text)
    keys = {key for key, _ in named_defaults(text, params)}
    for span in inline_spans(text):
        match = NAMED.match(span.strip())
        if match and "." in match.group(1):
            keys.add(match.group(1))
    for chunk in code + inline_spans(text):
        keys.update(OVERRIDE.findall(chunk))
    return {key for key in keys if key.split(".")[0] in params}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(code_and_prose(path.read_text())[1])}


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_][\w .-]*?)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def test_readme_is_a_short_guide():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; measurements and history go to docs/"


def test_every_default_the_readme_names_is_params_yaml_s():
    text, params = README.read_text(), load_params()
    found = named_defaults(text, params)
    assert len(found) >= 10, f"only {len(found)} `section.key: value` defaults found in README.md: {found}"
    assert "cgan.condition" in {key for key, _ in found}, "README.md must name the default generator"
    assert default_mismatches(text, params) == []


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return [*value, 0]
    if isinstance(value, dict):
        return {**value, "other": 0}
    return f"not-{value}"


def test_a_changed_param_makes_the_default_check_fail():
    """Each default the README names is really compared: changing it in a copy of params.yaml is caught."""
    text, params = README.read_text(), load_params()
    for key, _ in named_defaults(text, params):
        if lookup(params, key) is MISSING:
            continue  # reported by the test above
        other = copy.deepcopy(params)
        *parents, last = key.split(".")
        node = other
        for part in parents:
            node = node[part]
        node[last] = changed(node[last])
        assert any(f"`{key}:" in problem for problem in default_mismatches(text, other)), key


def test_the_convention_reads_yaml_values():
    params = {"cgan": {"condition": "frame", "epochs": 3}, "render": {"silence_db": 50.0}, "seed": 0}
    text = "`cgan.condition: frame`, `cgan.epochs: 3`, `render.silence_db: 50` and `cgan.condition=noise`"
    assert default_mismatches(text, params) == []
    wrong = "`cgan.condition: noise`: params.yaml has cgan.condition: 'frame'"
    assert default_mismatches("`cgan.condition: noise`", params) == [wrong]
    assert default_mismatches("`render.silence_db: false`", params) != []
    assert default_mismatches("`cgan.epoch: 3`", params) == ["`cgan.epoch: 3`: params.yaml has no cgan.epoch"]
    assert named_defaults("```\ncgan.epochs: 9\n```\n`error: x`", params) == []


def test_every_params_key_the_readme_names_exists():
    text, params = README.read_text(), load_params()
    keys = named_keys(text, params)
    assert len(keys) >= 10
    assert sorted(key for key in keys if lookup(params, key) is MISSING) == []


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_and_docs_path_exists(doc: Path):
    text = doc.read_text()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    if doc == README:
        broken += [p for p in DOCS_PATH.findall(text) if not (ROOT / p).exists()]
    assert broken == []


def test_the_readme_links_its_docs_and_images():
    links = {target.partition("#")[0] for target in LINK.findall(README.read_text())}
    assert {p.relative_to(ROOT).as_posix() for p in DOCS} <= links, "README.md should link every docs/*.md"
    assert any(link.endswith((".png", ".jpg")) for link in links)


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_make_target_named_is_in_the_makefile(doc: Path):
    code, _ = code_and_prose(doc.read_text())
    named = {target for chunk in code + inline_spans(doc.read_text()) for target in MAKE.findall(chunk)}
    if doc == README:
        assert {"demo", "test", "test-slow"} <= named
    assert sorted(named - makefile_targets()) == []
