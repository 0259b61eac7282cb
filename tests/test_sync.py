"""Each training clip's own sound-picture offset (models/training/sync.py): found by models that never
heard the clip, on its training frames only, and taken off its lips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from render_kit import ROOT
from test_speech import INDICES, lips_of, smooth_noise

from models.artifacts import SHIPPED_BASE, LstmArtifact
from models.training.data import Corpus, Video
from models.training.split import Split
from models.training.sync import fold_fits, fold_offsets, in_sync, shipped_fit, sync_folds
from tasks.config.params_loader import load_params
from tasks.rows.features import LOG_ENERGY
from tasks.rows.landmarks import lips_opening

FRAMES = 400
# Per clip: how many frames its lips come before its sound (its sound is that much late).
LATE = {"ann": 2, "bob": 0, "cy": -3, "dee": 1, "eve": 4}


def opening(energy: np.ndarray) -> np.ndarray:
    return 0.04 + 0.01 * energy


def clips() -> tuple[Corpus, Split]:
    videos, train = [], {}
    for k, (name, late) in enumerate(LATE.items()):
        energy = smooth_noise(FRAMES + 20, seed=k)
        audio = np.zeros((FRAMES, 28), np.float32)
        audio[:, LOG_ENERGY] = energy[10:FRAMES + 10]
        lips = lips_of(opening(energy[10 + late:FRAMES + 10 + late]))  # lips[t] shows the sound at t + late
        train[name] = np.ones(FRAMES, bool)
        if name == "eve":  # split by time: her later part is never trained on, and there her lips come
            train[name][150:] = False  # 6 frames after her sound
            lips[150:] = lips_of(opening(energy[150 + 4:FRAMES + 4]))
        videos.append(Video(name, audio, lips, np.ones(FRAMES, bool), None))
    val = {name: ~rows for name, rows in train.items()}
    return Corpus(videos, {"lip_indices": INDICES, "face_size": 128}), Split("speaker", train, val)


def test_offsets_are_found_by_models_that_never_heard_the_clip_and_taken_off():
    corpus, split = clips()
    params = load_params(ROOT / "params.yaml", {"render.silence_db": 0, "lstm.sync_folds": 5})
    heard: list[set[str]] = []

    def fit(others: Split):
        heard.append({v for v, rows in others.train.items() if rows.any()})
        assert not any(others.val[v].any() for v in others.val)
        return (lambda audio: lips_of(opening(audio[:, LOG_ENERGY]))), None

    offsets = video_offsets(corpus, split, params, fit)
    assert offsets == LATE
    assert len(heard) == 5 and all(len(h) == 4 for h in heard)  # each fold: one person, never heard
    synced = in_sync(corpus, offsets)
    for video in synced.videos:
        late = LATE[video.video_id]
        face = video.face_found & split.train[video.video_id]
        assert (~video.face_found).sum() == abs(late)  # the frames moved out have no lips
        asked = lips_opening(lips_of(opening(video.audio[:, LOG_ENERGY])), INDICES)[face]
        real = lips_opening(video.lips[face], INDICES)
        assert np.corrcoef(asked, real)[0, 1] == pytest.approx(1.0, abs=1e-4)


def video_offsets(corpus, split, params, fit, alone=shipped_fit) -> dict[str, int]:
    return fold_offsets(fold_fits(corpus, split, params, fit, alone), corpus, split, params)


def oracle(others: Split):
    return (lambda audio: lips_of(opening(audio[:, LOG_ENERGY]))), None


def test_one_person_is_measured_by_a_model_of_other_people_or_left_as_is():
    corpus, split = clips()
    same = {"split.by": "speaker", "split.speakers": dict.fromkeys(LATE, "same")}
    one = load_params(ROOT / "params.yaml", {**same, "render.silence_db": 0})
    assert sync_folds(split, one) == []
    never = lambda others: pytest.fail("no other people to train on")
    assert video_offsets(corpus, split, one, never, alone=lambda c: oracle) == LATE
    assert video_offsets(corpus, split, one, never, alone=lambda c: None) == {}
    # the shipped base measures a corpus whose rows it can hear, and only such a one
    assert shipped_fit(corpus) is None  # these rows name no features
    base = LstmArtifact.load(SHIPPED_BASE / "lstm.pt")
    heard = replace(corpus, meta={**corpus.meta, "feature_layout": list(base.feature_layout)})
    predict, output = shipped_fit(heard)(split)
    audio = np.zeros((50, len(base.feature_layout)), np.float32)
    assert predict(audio).shape == (50, 16) and output is not None


def test_no_offsets_with_sync_off():
    corpus, split = clips()
    off = load_params(ROOT / "params.yaml", {"lstm.sync_folds": 0})
    assert video_offsets(corpus, split, off, lambda others: pytest.fail("nothing to fit")) == {}
    two = load_params(ROOT / "params.yaml", {"lstm.sync_folds": 2})
    folds = sync_folds(split, two)
    assert len(folds) == 2 and sorted(v for fold in folds for v in fold) == sorted(LATE)
