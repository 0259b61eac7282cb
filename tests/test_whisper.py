"""Whisper tiny.en's encoder states (tasks/rows/whisper.py): read from the wheel's CTranslate2 model.bin and
run with torch, equal to CTranslate2's own encoder; encoded in absolute blocks, so that a stream hears what a
whole file does; in the frame table's layout before the loudness."""

from __future__ import annotations

import numpy as np
import pytest
from render_kit import SR, voice

from tasks.config.params import PreprocessParams
from tasks.rows import whisper
from tasks.rows.features import audio_features, feature_dim, feature_layout


def test_the_torch_encoder_hears_what_ctranslate2_s_does():
    ctranslate2 = pytest.importorskip("ctranslate2")  # a dev dependency: the reference implementation
    samples = voice(3.0, seed=1)
    ours = whisper.block_states(samples, SR)
    assert ours.shape == (150, whisper.WIDTH)
    mel = whisper.log_mel(np.pad(samples, (0, whisper.BLOCK_S * SR - len(samples))))
    assert mel.shape == (80, 3000)
    model = ctranslate2.models.Whisper(str(whisper.weights_file().parent), device="cpu",
                                       compute_type="float32")
    theirs = np.array(model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0][:150]
    assert np.abs(theirs).mean() > 0.1
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_speech_is_encoded_in_absolute_blocks_and_a_stream_hears_the_same(monkeypatch):
    monkeypatch.setattr(whisper, "BLOCK_S", 1)
    samples = voice(2.5, seed=2)
    times = np.arange(75) / 30
    whole = whisper.whisper_states(samples, SR, times)
    second = whisper.block_states(samples[SR : 2 * SR], SR)
    np.testing.assert_allclose(whole[30], second[0], atol=1e-6)  # 1 s: the second block's first state
    np.testing.assert_allclose(whole[15], whisper.block_states(samples[:SR], SR)[25], atol=1e-6)  # 0.5 s
    blocks = whisper.WhisperBlocks(SR)
    for lo, hi in [(0, 7), (7, 16000), (16000, 16003), (16003, 40000)]:
        blocks.add(samples[lo:hi])
    blocks.finish()
    np.testing.assert_allclose(blocks.features(times), whole, atol=1e-6)
    blocks.forget(1.5)
    np.testing.assert_allclose(blocks.features(times[30:]), whole[30:], atol=1e-6)


def test_the_states_sit_before_the_loudness_in_the_frame_table():
    layout = feature_layout(13, phones=True, whisper=True)
    assert len(layout) == 68 + 384 == feature_dim(PreprocessParams(whisper=True)) == len(set(layout))
    assert layout[66] == "whisper_0" and layout[-2:] == ["log_energy", "delta_log_energy"]
    samples, times = voice(1.0, seed=3), np.arange(30) / 30
    heard = audio_features(samples, SR, times, PreprocessParams(whisper=True))
    plain = audio_features(samples, SR, times, PreprocessParams(whisper=False))
    np.testing.assert_array_equal(heard[:, :66], plain[:, :66])
    np.testing.assert_array_equal(heard[:, -2:], plain[:, -2:])
    np.testing.assert_allclose(heard[:, 66:-2], whisper.whisper_states(samples, SR, times), atol=1e-6)


def test_a_stream_hears_the_windows_a_file_does_each_moment_from_the_first_window_ending_after_it():
    """`preprocess.whisper: window`: moment t is read from the window ending at the first multiple of HOP_S
    at least LOOKAHEAD_S after it, WINDOW_S of speech long (shorter at the start, silence past the end)."""
    samples, times = voice(3.1, seed=4), np.arange(93) / 30
    whole = whisper.window_states(samples, SR, times)
    at = 45  # 1.5 s: the window ending at 1.8 s, from -0.2 (so 0) to 1.8 s
    first = whisper.encode(whisper.log_mel(samples[: round(1.8 * SR)]))
    np.testing.assert_allclose(whole[at], whisper.states_at(first, np.array([1.5]))[0], atol=1e-5)
    late = whisper.encode(whisper.log_mel(np.pad(samples[round(1.4 * SR):], (0, round(0.3 * SR)))))
    np.testing.assert_allclose(whole[-1], whisper.states_at(late, np.array([92 / 30 - 1.4]))[0], atol=1e-5)
    windows = whisper.WhisperWindows(SR)
    for lo, hi in [(0, 5), (5, 20000), (20000, 20001), (20001, len(samples))]:
        windows.add(samples[lo:hi])
    with pytest.raises(ValueError, match="not heard yet"):
        windows.features(times)
    np.testing.assert_allclose(windows.features(times[:80]), whole[:80], atol=1e-6)  # all ended by 3.0 s
    # live: a moment whose window has not ended reads the last one heard
    np.testing.assert_allclose(windows.features(times[-1:], latest=True)[0],
                               whisper.states_at(windows._window(15), np.array([92 / 30 - 1.0]))[0],
                               atol=1e-6)
    windows.finish()
    windows.forget(2.6)  # the speech before 0.4 s and the windows ending before 2.6 s let go
    np.testing.assert_allclose(windows.features(times[78:]), whole[78:], atol=1e-6)
    assert windows.offset == round(0.4 * SR) and min(windows.windows) == 13


def test_the_windowed_states_have_names_of_their_own():
    layout = feature_layout(13, phones=True, whisper="window")
    assert layout[66] == "whisper_window_0" and whisper.whisper_kind(layout) == "window"
    assert whisper.whisper_kind(feature_layout(whisper=True)) is True
    assert whisper.whisper_kind(feature_layout()) is False


def test_a_file_that_is_not_a_whisper_model_is_named(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x06\x00\x00\x00" + b"\x05\x00abcd\x00" + b"\x01\x00\x00\x00" + b"\x00\x00\x00\x00")
    with pytest.raises(RuntimeError, match="model.bin: not a CTranslate2 Whisper tiny model"):
        whisper.read_encoder(bad)


def test_windows_encoded_together_are_each_as_encoded_alone():
    """WhisperWindows encodes the windows of one length WINDOW_BATCH at a time; each state is the one its
    window gives alone (to float rounding: states of up to ~10), and the batch's order is the windows'."""
    samples = voice(2.6, seed=5)
    mels = np.stack([whisper.log_mel(samples[lo : lo + 2 * SR]) for lo in (0, 1600, 4800, 9600)])
    together = whisper.encode(mels)
    assert together.shape == (4, 100, whisper.WIDTH)
    for mel, states in zip(mels, together):
        np.testing.assert_allclose(states, whisper.encode(mel), atol=2e-4)
    windows = whisper.WhisperWindows(SR)
    windows.add(samples)
    windows.finish()
    windows._encode_windows(range(1, 14))  # 0.2 .. 1.8 s long, then three of 2 s: one call of three
    for k in (3, 11, 12, 13):
        heard = samples[max(0, round((k * 0.2 - 2) * SR)) : round(k * 0.2 * SR)]
        np.testing.assert_allclose(windows.windows[k], whisper.encode(whisper.log_mel(heard)), atol=2e-4)
