"""params.yaml is loaded by one typed loader; bad keys and values stop with a message naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.config.params import Params, digest
from tasks.config.params_loader import ParamsError, load_params, parse_override

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repo_params_load_and_hold_every_section():
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    # Every key in the file is one the loader knows (else it would have raised) and round-trips.
    dumped = params.model_dump()
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert dumped[section][key] == value, f"{section}.{key}"
        else:
            assert dumped[section] == values


def test_the_code_defaults_are_params_yaml_s():
    """One default per knob: a key left out of a params file (an older project's, an evaluation's
    overrides) means what params.yaml says, not another value in the code."""
    assert Params().model_dump() == load_params(ROOT / "params.yaml").model_dump()


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"unknown key 'preprocess\.fsp'.*25"):
        load_params(write(tmp_path, {"preprocess": {"fsp": 25}}))


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"unknown key 'trainig'"):
        load_params(write(tmp_path, {"trainig": {"epochs": 3}}))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"bad value for 'data\.max_height': 'tall'"):
        load_params(write(tmp_path, {"data": {"max_height": "tall"}}))


def test_out_of_range_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"bad value for 'lstm\.dropout': 1\.5"):
        load_params(write(tmp_path, {"lstm": {"dropout": 1.5}}))


def test_bad_choice_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"bad value for 'data\.source': 'youtube'"):
        load_params(write(tmp_path, {"data": {"source": "youtube"}}))


def test_lip_indices_must_be_eight_lip_points(tmp_path):
    with pytest.raises(ParamsError, match=r"preprocess\.lip_indices.*8"):
        load_params(write(tmp_path, {"preprocess": {"lip_indices": [48, 50]}}))
    with pytest.raises(ParamsError, match=r"preprocess\.lip_indices.*48\.\.67"):
        load_params(write(tmp_path, {"preprocess": {"lip_indices": [1, 2, 3, 4, 5, 6, 7, 8]}}))


def test_several_errors_are_all_reported(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, {"demo": {"clips": 0, "colour": "red"}}))
    assert "demo.clips" in str(info.value) and "demo.colour" in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(tmp_path / "list.yaml")


def test_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, {"data": {"source": "demo"}})
    params = load_params(path, {"data.source": "sources", "preprocess.fps": 25})
    assert params.data.source == "sources" and params.preprocess.fps == 25
    with pytest.raises(ParamsError, match=r"unknown key 'data\.sourc'"):
        load_params(path, {"data.sourc": "sources"})
    with pytest.raises(ParamsError, match="not a section"):
        load_params(path, {"data.source.x": 1})


def test_parse_override_reads_yaml_values():
    assert parse_override("lstm.dropout=0.5") == ("lstm.dropout", 0.5)
    assert parse_override("lstm.bidirectional=false") == ("lstm.bidirectional", False)
    assert parse_override("preprocess.lip_indices=[48,50,52,54,56,58,62,66]")[1][0] == 48
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        parse_override("lstm.dropout")


def test_digest_follows_values():
    a = load_params(ROOT / "params.yaml").preprocess
    b = a.model_copy(update={"fps": 25.0})
    assert digest(a) == digest(a.model_copy()) and digest(a) != digest(b)
