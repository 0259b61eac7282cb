"""flows/corpus.py: build_corpus's choice of stages, what it passes them and when it keeps a corpus. The
stages themselves are replaced by one that records its command line and leaves the output a stage leaves
(the real ones are the project's own stages, tested on their own)."""

from __future__ import annotations

import json

import pytest

from flows import corpus
from flows.corpus import MADE, ROWS, STAGES, build_corpus
from tasks.config.params import load_params
from tasks.config.paths import Paths


@pytest.fixture
def ran(monkeypatch) -> list[tuple[str, ...]]:
    """The stages run, as (module, root, *extra), each leaving its output in the corpus at root."""
    calls: list[tuple[str, ...]] = []

    def stage(module: str, root, *extra: str) -> None:
        calls.append((module, str(root), *extra))
        made = getattr(Paths.at(root), MADE[module])
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_bytes(b"made")

    monkeypatch.setattr(corpus, "_stage", stage)
    return calls


@pytest.fixture
def sources(tmp_path):
    path = tmp_path / "sources.txt"
    path.write_text("../clips/one.mp4\n")
    return path


def test_a_corpus_runs_every_stage_once_and_is_kept_while_its_stamp_matches(ran, sources, tmp_path):
    root = tmp_path / "corpus"
    paths = build_corpus(root, sources, {"cgan.epochs": 3})
    assert [call[0] for call in ran] == list(STAGES) and {call[1] for call in ran} == {str(root.resolve())}
    params = load_params(paths.params)
    assert (params.data.source, params.data.sources_file, params.cgan.epochs) == ("sources", str(sources), 3)
    build_corpus(root, sources, {"cgan.epochs": 3, "adapt.epochs": 7})  # a section no stage reads
    assert len(ran) == len(STAGES)
    assert load_params(paths.params).adapt.epochs == 7  # its params.yaml is today's all the same
    build_corpus(root, sources, {"cgan.epochs": 4})
    assert len(ran) == 2 * len(STAGES)
    paths.metrics.unlink()  # its last stage's output gone: built anew
    build_corpus(root, sources, {"cgan.epochs": 4})
    assert len(ran) == 3 * len(STAGES)


def test_a_corpus_of_rows_runs_ingest_and_preprocess_and_is_kept_over_other_params(ran, sources, tmp_path):
    root = tmp_path / "rows"
    paths = build_corpus(root, sources, {"split.by": "speaker"}, stages=ROWS)
    assert [call[0] for call in ran] == ["flows.ingest", "flows.preprocess"]
    others = {"split.by": "speaker", "lstm.epochs": 2, "render.silence_db": 0}
    build_corpus(root, sources, others, stages=ROWS)
    assert len(ran) == 2 and load_params(paths.params).lstm.epochs == 2
    build_corpus(root, sources, {"preprocess.jpeg_quality": 80}, stages=ROWS)
    assert len(ran) == 4
    sources.write_text("../clips/two.mp4\n")
    build_corpus(root, sources, {"preprocess.jpeg_quality": 80}, stages=ROWS)
    assert len(ran) == 6


def test_a_corpus_on_another_ones_rows_trains_on_its_shards(ran, sources, tmp_path):
    frame = build_corpus(tmp_path / "frame", sources)
    ran.clear()
    noise = build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                         stages=("models.training.train_cgan",), rows=frame)
    assert ran == [("models.training.train_cgan", str((tmp_path / "noise").resolve()), "--shards",
                    str(frame.shards.resolve()))]
    assert noise.shards == frame.shards and noise.videos == frame.videos
    assert noise.cgan == Paths.at(tmp_path / "noise").cgan and noise.cgan.is_file()
    build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                 stages=("models.training.train_cgan",), rows=frame)
    assert len(ran) == 1
    stamp = json.loads((frame.root / corpus.STAMP).read_text())
    (frame.root / corpus.STAMP).write_text(json.dumps({**stamp, "sources": "another"}))  # rows made anew
    build_corpus(tmp_path / "noise", sources, {"cgan.condition": "noise"},
                 stages=("models.training.train_cgan",), rows=frame)
    assert len(ran) == 2


def test_on_another_corpus_s_rows_only_training_runs(sources, tmp_path):
    with pytest.raises(ValueError, match="only"):
        build_corpus(tmp_path / "x", sources, stages=ROWS, rows=Paths.at(tmp_path / "frame"))
