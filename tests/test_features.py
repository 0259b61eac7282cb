import numpy as np
import pytest

from tasks.config.params import PreprocessParams
from tasks.rows.features import FEATURE_LAYOUT, audio_features, feature_dim, feature_layout
from tasks.rows.phones import PHONES, block_track, phone_track

SR = 16000
PARAMS = PreprocessParams(phones=False, words=False, whisper=False)  # the paper's 28-D; phones below
PHONES_ONLY = PreprocessParams(phones=True, words=False, whisper=False)
WITH_WORDS = PreprocessParams(phones=True, words=True, whisper=False)
LOG_ENERGY = FEATURE_LAYOUT.index("log_energy")


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (envelope * (np.sin(2 * np.pi * 220 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


def test_layout_names_every_dimension():
    assert len(FEATURE_LAYOUT) == 28 == len(set(FEATURE_LAYOUT))
    assert FEATURE_LAYOUT[:2] == ["mfcc_0", "mfcc_1"] and FEATURE_LAYOUT[13] == "delta_mfcc_0"
    assert FEATURE_LAYOUT[-2:] == ["log_energy", "delta_log_energy"]
    assert feature_layout(PARAMS.n_mfcc) == FEATURE_LAYOUT


@pytest.mark.parametrize("fps", [25.0, 30.0, 30000 / 1001])
def test_shape_dtype_and_edges(fps):
    samples = _speechlike(2.0)
    times = np.arange(int(2.0 * fps)) / fps
    features = audio_features(samples, SR, times, PARAMS)
    assert features.shape == (len(times), 28) and features.dtype == np.float32
    assert np.isfinite(features).all()
    # Frame 0 and the last frame see half a window of padding, not garbage.
    assert features[0, LOG_ENERGY] > np.log(1e-3) and features[-1, LOG_ENERGY] > np.log(1e-3)


def test_silence_is_finite_and_constant():
    times = np.arange(30) / 30
    features = audio_features(np.zeros(SR, np.float32), SR, times, PARAMS)
    assert np.isfinite(features).all()
    assert np.allclose(features, features[0], atol=1e-4) and np.allclose(features[:, 13:26], 0, atol=1e-4)
    assert np.isclose(features[0, LOG_ENERGY], np.log(1e-10))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7])
def test_short_clips(n):
    features = audio_features(_speechlike(1.0), SR, np.arange(n) / 30, PARAMS)
    assert features.shape == (n, 28) and np.isfinite(features).all()


def test_times_past_the_audio_end_are_silence():
    features = audio_features(_speechlike(0.5), SR, np.arange(30) / 30, PARAMS)
    assert np.isfinite(features).all()
    assert np.isclose(features[-1, LOG_ENERGY], np.log(1e-10))


@pytest.mark.parametrize("fps", [25.0, 30.0])
@pytest.mark.parametrize("offset_ms", [-10.0, 0.0, 10.0])
def test_window_is_centred_on_the_frame_time(fps, offset_ms):
    """A click 10 ms before or after frame k's time lands in frame k: the window is centred.

    A window that starts (or ends) at the frame time would put the early (late) click in
    the previous (next) frame.
    """
    k = 20
    samples = np.zeros(2 * SR, np.float32)
    click = round((k / fps + offset_ms / 1000) * SR)
    samples[click:click + 8] = 1.0
    features = audio_features(samples, SR, np.arange(int(2 * fps)) / fps, PARAMS)
    energy = features[:, LOG_ENERGY]
    assert int(np.argmax(energy)) == k
    assert np.isclose(np.delete(energy, k), np.log(1e-10)).all()


def test_static_features_depend_only_on_their_own_window():
    """Rendering computes features for other frame sets; a frame's MFCC must not change with them."""
    samples = _speechlike(3.0, seed=1)
    all_frames = audio_features(samples, SR, np.arange(90) / 30, PARAMS)
    some_frames = audio_features(samples, SR, np.array([10, 45, 80]) / 30, PARAMS)
    static = [*range(13), LOG_ENERGY]
    assert np.allclose(all_frames[[10, 45, 80]][:, static], some_frames[:, static], atol=1e-4)


def test_deltas_follow_the_energy():
    """Rising loudness gives a positive delta log energy, falling loudness a negative one."""
    t = np.arange(2 * SR) / SR
    ramp = np.where(t < 1, t, 2 - t).astype(np.float32)
    samples = ramp * np.sin(2 * np.pi * 300 * t).astype(np.float32)
    features = audio_features(samples, SR, np.arange(60) / 30, PARAMS)
    delta = features[:, -1]
    assert (delta[5:25] > 0).all() and (delta[35:55] < 0).all()


def test_phones_sit_between_the_deltas_and_the_loudness():
    layout = feature_layout(13, phones=True)
    assert len(layout) == 68 == feature_dim(PHONES_ONLY) == len(set(layout))
    assert layout[26] == "phone_SIL" and layout[-2:] == ["log_energy", "delta_log_energy"]
    samples = _speechlike(1.5, seed=3)
    times = np.arange(45) / 30
    with_phones = audio_features(samples, SR, times, PHONES_ONLY)
    without = audio_features(samples, SR, times, PARAMS)
    np.testing.assert_array_equal(with_phones[:, :26], without[:, :26])
    np.testing.assert_array_equal(with_phones[:, -2:], without[:, -2:])
    shares = with_phones[:, 26:-2]
    assert shares.shape == (45, len(PHONES)) and np.allclose(shares.sum(1), 1)


def test_silence_is_the_silence_phone():
    params = PHONES_ONLY
    shares = audio_features(np.zeros(SR, np.float32), SR, np.arange(30) / 30, params)
    assert np.allclose(shares[:, 26], 1)


def test_blocks_decode_on_their_own(monkeypatch):
    """Speech decoded in blocks: each block's phones are those of its samples alone, full blocks exactly
    BLOCK_S / STEP_S steps, so a stream that sees one block at a time gets the same track."""
    from tasks.rows import phones

    monkeypatch.setattr(phones, "BLOCK_S", 1)
    samples = _speechlike(2.5, seed=4)
    track = block_track(samples, SR)
    assert len(track) == 100 + 100 + len(phone_track(samples[2 * SR:], SR))
    np.testing.assert_array_equal(track[100:200], phone_track(samples[SR : 2 * SR], SR)[:100])


def test_the_words_phones_follow_the_phone_loop_s():
    """preprocess.words: 40 more shares, of the phones of the words heard, after the phone loop's."""
    layout = feature_layout(13, phones=True, words=True)
    assert len(layout) == 108 == feature_dim(WITH_WORDS) == len(set(layout))
    assert layout[26] == "phone_SIL" and layout[66] == "word_SIL"
    assert layout[-2:] == ["log_energy", "delta_log_energy"]
    assert feature_layout(13, phones=False, words=True)[26] == "word_SIL"
    samples = _speechlike(1.5, seed=3)
    times = np.arange(45) / 30
    both = audio_features(samples, SR, times, WITH_WORDS)
    phones = audio_features(samples, SR, times, PHONES_ONLY)
    np.testing.assert_array_equal(both[:, :66], phones[:, :66])
    np.testing.assert_array_equal(both[:, -2:], phones[:, -2:])
    assert np.allclose(both[:, 66:-2].sum(1), 1)
