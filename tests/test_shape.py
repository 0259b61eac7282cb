"""The lips' shape beside the opening, scaled by what the LSTM earns on voices it never heard
(models/training/shape.py, models/training/lips.py: shaped_lips)."""

from __future__ import annotations

import numpy as np
import pytest
from render_kit import ROOT
from test_speech import INDICES, lips_of, smooth_noise

from models.artifacts import LstmArtifact
from models.records import Shape
from models.training.data import Corpus, Video
from models.training.lips import lips_moments, opening_split, shaped_lips, speaker_lips
from models.training.shape import shape_gain
from models.training.split import Split
from models.training.sync import FoldFit, fold_fits
from tasks.config.params_loader import load_params
from tasks.rows.features import LOG_ENERGY
from tasks.rows.landmarks import lips_opening

FRAMES = 400
PEOPLE = ["ann", "bob", "cy", "dee"]


def mouth(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(opening, width): two independent smooth signals of a mouth."""
    return 0.04 + 0.01 * smooth_noise(frames, seed), 0.01 * smooth_noise(frames, seed + 100)


def lips_with(opening: np.ndarray, width: np.ndarray) -> np.ndarray:
    """lips_of(opening) with the corners `width` further apart."""
    lips = lips_of(opening).reshape(len(opening), 8, 2)
    lips[:, 0, 0] -= width
    lips[:, 3, 0] += width
    return lips.reshape(len(opening), 16)


def test_shaped_lips_keep_the_opening_and_scale_the_rest():
    opening, width = mouth(FRAMES, seed=1)
    lips = lips_with(opening, width)
    target = lips_moments(lips)
    along, rest = opening_split(target, INDICES)
    np.testing.assert_allclose(along + rest, np.eye(16), atol=1e-12)
    assert np.allclose(shaped_lips(lips, target, Shape(1.0, tuple(INDICES))), lips, atol=1e-6)
    flat = shaped_lips(lips, target, Shape(0.0, tuple(INDICES)))
    # the opening as asked (to the linearisation's error), the width left at the target's mean
    assert np.corrcoef(lips_opening(flat, INDICES), opening)[0, 1] > 0.999
    assert np.abs(lips_opening(flat, INDICES) - opening).max() < 1e-3
    # (what is left of it: the part of this sample's width that goes with its opening)
    corners = flat.reshape(FRAMES, 8, 2)[:, 3, 0] - flat.reshape(FRAMES, 8, 2)[:, 0, 0]
    assert corners.std() < 0.1 * (2 * width).std()
    half = shaped_lips(lips, target, Shape(0.5, tuple(INDICES)))
    np.testing.assert_allclose(half, (flat + lips) / 2, atol=1e-6)


def clips() -> tuple[Corpus, Split]:
    videos, train = [], {}
    for k, name in enumerate(PEOPLE):
        opening, width = mouth(FRAMES, seed=10 * k)
        audio = np.zeros((FRAMES, 28), np.float32)
        audio[:, LOG_ENERGY] = opening
        audio[:, 0] = width
        videos.append(Video(name, audio, lips_with(opening, width), np.ones(FRAMES, bool), None))
        train[name] = np.ones(FRAMES, bool)
    split = Split("speaker", train, {name: np.zeros(FRAMES, bool) for name in PEOPLE})
    return Corpus(videos, {"lip_indices": INDICES, "face_size": 128}), split


@pytest.mark.parametrize(("told", "expected"), [(1.0, (0.85, 1.0)), (0.0, (0.0, 0.15))])
def test_the_gain_is_what_the_unheard_shape_earns(told, expected):
    """A model that hears the width (`told` 1) earns a gain near 1; one whose width is noise, near 0; the
    opening is heard either way."""
    corpus, split = clips()
    params = load_params(ROOT / "params.yaml", {"render.silence_db": 0, "lstm.sync_folds": 4})
    rng = np.random.default_rng(0)

    def fit(others: Split):
        def predict(audio):
            noise = 0.01 * rng.normal(size=len(audio))
            return lips_with(audio[:, LOG_ENERGY], told * audio[:, 0] + (1 - told) * noise)
        return predict, None

    fits = fold_fits(corpus, split, params, fit)
    assert len(fits) == 4
    gain = shape_gain(fits, corpus, split, params)
    assert expected[0] <= gain <= expected[1]
    # the measuring model's own voice is no measure: a one-person corpus keeps all of the shape
    shipped = [FoldFit(f.videos, f.predict, f.output, f.stats, shipped=True) for f in fits]
    assert shape_gain(shipped, corpus, split, params) == 1.0


def test_a_render_keeps_the_opening_whatever_the_gain():
    corpus, _ = clips()
    video = corpus.video("ann")
    own = lips_moments(video.lips)
    params = load_params(ROOT / "params.yaml", {"render.silence_db": 0})
    asked = {gain: speaker_lips(video.lips, params, own, own, shape=Shape(gain, tuple(INDICES)))
             for gain in (1.0, 0.0)}
    opened = {gain: lips_opening(lips, INDICES) for gain, lips in asked.items()}
    assert np.corrcoef(opened[1.0], opened[0.0])[0, 1] > 0.999
    assert opened[0.0].std() == pytest.approx(opened[1.0].std(), rel=0.02)
    # an artifact written before the gain was kept trusts the whole shape
    assert LstmArtifact.__dataclass_fields__["shape_gain"].default == 1.0


def test_render_shape_gain_forces_the_artifact_s():
    corpus, _ = clips()
    video = corpus.video("bob")
    own = lips_moments(video.lips)
    earned = Shape(0.0, tuple(INDICES))

    def asked(**override):
        params = load_params(ROOT / "params.yaml", {"render.silence_db": 0, **override})
        return speaker_lips(video.lips, params, own, own, shape=earned)

    whole = speaker_lips(video.lips, load_params(ROOT / "params.yaml", {"render.silence_db": 0}), own, own)
    np.testing.assert_allclose(asked(**{"render.shape_gain": 1}), whole, atol=1e-6)  # forced: all of it
    flat = asked()  # auto: the artifact's 0
    assert not np.allclose(flat, whole, atol=1e-3)
    np.testing.assert_allclose(asked(**{"render.shape_gain": 0}), flat, atol=1e-6)
