"""What the LSTM hears of the frame table's audio (models/networks/lstm.py: heard_features, VISEMES):
with lstm.phone_classes visemes, the 40 phone shares summed into the groups that look alike on the lips,
the same in training, in every render and in artifacts read back; phones as they are otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from models.artifacts import LstmArtifact
from models.networks.lstm import VISEMES, AudioToLips, heard_features, load_lstm, predict_lips, window_index
from models.records import LinearLips
from tasks.rows.features import feature_layout
from tasks.rows.phones import PHONES

LAYOUT = feature_layout(phones=True)  # 26 MFCC and deltas, 40 phone shares, log energy and its delta
MADE = {"epoch": 1, "lip_indices": [48, 50, 52, 54, 56, 58, 62, 66], "fps": 30.0, "split_by": "time",
        "val_videos": ["a"], "params": {}, "params_digest": "d", "data_fingerprint": "f"}


def rows(frames: int = 12, seed: int = 0) -> np.ndarray:
    """Feature rows as preprocessing makes them: each frame's phone shares sum to 1."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(frames, len(LAYOUT))).astype(np.float32)
    phones = [i for i, name in enumerate(LAYOUT) if name.startswith("phone_")]
    features[:, phones] = rng.dirichlet(np.ones(len(phones)), frames)
    return features


def test_the_viseme_groups_hold_every_phone_once():
    grouped = [phone for group in VISEMES for phone in group]
    assert sorted(grouped) == sorted(PHONES) and len(grouped) == len(set(grouped))


def test_visemes_sum_the_phone_shares_in_their_place_and_keep_the_rest():
    features = rows()
    heard = heard_features(features, LAYOUT, "visemes")
    assert heard.shape == (12, len(LAYOUT) - len(PHONES) + len(VISEMES)) and heard.dtype == np.float32
    first = LAYOUT.index("phone_SIL")
    assert np.array_equal(heard[:, :first], features[:, :first])  # the MFCC and deltas
    assert np.array_equal(heard[:, -2:], features[:, -2:])  # the loudness and its delta
    groups = heard[:, first:first + len(VISEMES)]
    assert np.allclose(groups.sum(1), 1.0, atol=1e-5)  # still shares
    lips_shut = VISEMES.index(("P", "B", "M"))
    assert np.allclose(groups[:, lips_shut], sum(features[:, LAYOUT.index(f"phone_{p}")] for p in "PBM"))
    assert heard_features(features, LAYOUT, "phones") is features
    paper = feature_layout(phones=False)
    assert heard_features(features[:, :28], paper, "visemes").shape == (12, 28)  # no phones: as they are


def test_both_kinds_of_phone_shares_are_each_summed_into_visemes():
    """With the words' phones too (preprocess.words), each kind is grouped in its own place."""
    layout = feature_layout(phones=True, words=True)
    rng = np.random.default_rng(2)
    features = rng.normal(size=(9, len(layout))).astype(np.float32)
    for kind in ("phone_", "word_"):
        shares = [i for i, name in enumerate(layout) if name.startswith(kind)]
        features[:, shares] = rng.dirichlet(np.ones(len(shares)), 9)
    heard = heard_features(features, layout, "visemes")
    assert heard.shape == (9, 26 + 2 * len(VISEMES) + 2)
    assert np.array_equal(heard[:, :26], features[:, :26]) and np.array_equal(heard[:, -2:], features[:, -2:])
    loop, words = heard[:, 26 : 26 + len(VISEMES)], heard[:, 26 + len(VISEMES) : -2]
    assert np.allclose(loop.sum(1), 1, atol=1e-5) and np.allclose(words.sum(1), 1, atol=1e-5)
    shut = VISEMES.index(("P", "B", "M"))
    assert np.allclose(words[:, shut], sum(features[:, layout.index(f"word_{p}")] for p in "PBM"))
    assert np.allclose(loop[:, shut], sum(features[:, layout.index(f"phone_{p}")] for p in "PBM"))
    alone = feature_layout(phones=False, words=True)
    assert heard_features(features[:, [layout.index(n) for n in alone]], alone, "visemes").shape == (9, 40)


def test_an_lstm_that_hears_visemes_takes_the_rows_as_they_are_after_a_round_trip(tmp_path):
    heard = len(LAYOUT) - len(PHONES) + len(VISEMES)
    torch.manual_seed(0)
    model = AudioToLips(features=heard, hidden=8, fc_hidden=8).eval()
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=heard).astype(np.float32), rng.uniform(0.5, 2, heard).astype(np.float32)
    LstmArtifact(state_dict=model.state_dict(), hparams={"features": heard, "hidden": 8, "fc_hidden": 8},
                 context=2, audio_mean=mean, audio_std=std, lips_mean=np.full(16, 0.5, np.float32),
                 lips_std=np.full(16, 0.1, np.float32), face_size=128, feature_layout=LAYOUT, val_loss=0.5,
                 phone_classes="visemes", **MADE).save(tmp_path / "lstm.pt")
    loaded, artifact = load_lstm(tmp_path / "lstm.pt")
    assert artifact.phone_classes == "visemes"
    features = rows()
    lips = predict_lips(loaded, artifact, features)  # the frame table's 68 columns, not the 40 it hears
    expected = (heard_features(features, LAYOUT, "visemes") - mean) / std
    with torch.no_grad():
        direct = model(torch.from_numpy(expected.astype(np.float32))[window_index(12, 2)]).numpy()
    assert np.allclose(lips, direct * 0.1 + 0.5, atol=1e-5)

    saved = artifact.to_disk()
    del saved["phone_classes"]  # an LSTM written before it was kept heard the phones as they are
    assert LstmArtifact.from_disk(saved).phone_classes == "phones"


def test_a_linear_map_mixed_in_hears_whisper_s_windows_which_the_lstm_never_does(tmp_path):
    """lstm.linear_share: predict_lips asks for that share of the lips from the artifact's linear map over
    every column (Whisper's windowed states too) and the rest from the LSTM, which hears the layout less
    those states (models/networks/lstm.py: LINEAR_ONLY); the map survives the artifact's round trip."""
    layout = feature_layout(phones=True, whisper="window")
    heard_all = len(layout) - len(PHONES) + len(VISEMES)
    heard_lstm = heard_all - 384
    torch.manual_seed(0)
    model = AudioToLips(features=heard_lstm, hidden=8, fc_hidden=8).eval()
    rng = np.random.default_rng(2)
    linear = LinearLips(rng.normal(size=(5 * heard_all, 16)) * 0.01, rng.normal(size=heard_all),
                        rng.uniform(0.5, 2, heard_all), np.full(16, 0.4), 0.25)
    LstmArtifact(state_dict=model.state_dict(), hparams={"features": heard_lstm, "hidden": 8, "fc_hidden": 8},
                 context=2, audio_mean=np.zeros(heard_lstm, np.float32),
                 audio_std=np.ones(heard_lstm, np.float32),
                 lips_mean=np.full(16, 0.5, np.float32), lips_std=np.full(16, 0.1, np.float32), face_size=128,
                 feature_layout=layout, val_loss=0.5, phone_classes="visemes", linear=linear,
                 **MADE).save(tmp_path / "lstm.pt")
    loaded, artifact = load_lstm(tmp_path / "lstm.pt")
    features = rng.normal(size=(12, len(layout))).astype(np.float32)
    heard = heard_features(features, layout, "visemes")
    stacked = ((heard - linear.mean) / linear.std)[window_index(12, 2)].reshape(12, -1)
    by_map = stacked @ linear.matrix + linear.lips_mean
    no_windows = [i for i, name in enumerate(layout) if not name.startswith("whisper_window_")]
    with torch.no_grad():
        heard_by_lstm = heard_features(features[:, no_windows], [layout[i] for i in no_windows], "visemes")
        by_lstm = model(torch.from_numpy(heard_by_lstm)[window_index(12, 2)]).numpy() * 0.1 + 0.5
    np.testing.assert_allclose(predict_lips(loaded, artifact, features), 0.25 * by_map + 0.75 * by_lstm,
                               atol=1e-5)
    assert "linear" not in dataclasses.replace(artifact, linear=None).to_disk()  # as an LSTM of before
