"""The live stream (models/rendering/stream.py) on a tiny trained project with real footage: frames at the
footage's fps with their times, made once the lookahead has been heard, the newest kept when a slow
consumer falls behind, and the lips of an offline render."""

from __future__ import annotations

import numpy as np
import pytest
from render_kit import SR, random_lstm, voice

from models.errors import RenderError
from models.rendering.render import clip_lips
from models.rendering.speech import frame_count, speech_lips
from models.rendering.stream import LiveStream, frame_step
from tasks.config.params import Params
from tasks.rows.features import LOG_ENERGY, audio_features
from tasks.rows.landmarks import lips_opening

CHUNK = SR // 50  # 20 ms, as the page sends
STEP = SR // 10  # 100 ms: fewer steps where what is measured does not depend on the chunks


def with_params(params: Params, live: dict, render: dict | None = None) -> Params:
    return params.model_copy(update={"live": params.live.model_copy(update=live),
                                     "render": params.render.model_copy(update=render or {})})


def speech(seconds: float = 2.0) -> np.ndarray:
    """A voice with a half-second pause in the middle (the silence gate closes the mouth there)."""
    samples = voice(seconds, seed=3)
    middle = len(samples) // 2
    samples[middle : middle + SR // 2] = 0
    return samples


def run(stream: LiveStream, samples: np.ndarray, chunk: int = STEP) -> list:
    frames = []
    for start in range(0, len(samples), chunk):
        frames += stream.push(samples[start : start + chunk])
    return frames + stream.flush()


def test_frame_boundaries_fall_on_whole_samples():
    assert frame_step(30, 16000) == 3 and frame_step(25, 16000) == 1 and frame_step(24, 44100) == 2
    for fps, rate in ((30, 16000), (25, 16000), (24, 44100), (60, 48000)):
        step = frame_step(fps, rate)
        assert abs(step * rate / fps - round(step * rate / fps)) < 1e-6
    assert frame_step(29.97, 16000) == 1, "none within MAX_STEP frames: the nearest sample"


def test_frames_come_at_fps_with_their_times_once_the_lookahead_is_heard(footage):
    params = with_params(footage.params, {"lookahead_ms": 200.0, "max_batch": 8})
    stream = LiveStream(footage.resolve(), params, mark_id=7)
    stream.warm_up()  # changes nothing of the stream
    assert stream.heard == stream.next == stream.painted == 0
    samples, frames = speech(1.0), []
    for start in range(0, len(samples), CHUNK):
        pushed = stream.push(samples[start : start + CHUNK])
        for frame in pushed:
            at = frame.index * SR / params.preprocess.fps  # the frame's time, in samples
            past = frame.heard - round(0.2 * SR)  # the speech heard before the lookahead
            assert at - 1e-6 < past <= at + CHUNK + 1e-6, "made as soon as its lookahead was heard"
        frames += pushed
    frames += stream.flush()
    fps = params.preprocess.fps
    assert [f.index for f in frames] == list(range(frame_count(len(samples), SR, fps))), "every frame, once"
    assert np.allclose([f.time for f in frames], np.arange(len(frames)) / fps)
    assert stream.dropped == 0 and stream.painted == len(frames)
    first = frames[0].image
    assert first.dtype == np.uint8 and first.shape == (stream.footage.height, stream.footage.width, 3)
    assert len({f.image.tobytes() for f in frames[:10]}) == 10, "the footage plays on"
    assert len(stream.samples) <= (params.live.window_ms / 1000 + 0.2) * SR + 3 * CHUNK, "speech forgotten"


def test_without_lookahead_a_frame_waits_for_its_own_time_to_be_heard(footage):
    params = with_params(footage.params, {"lookahead_ms": 0.0, "max_batch": 8})
    stream = LiveStream(footage.resolve(), params, mark_id=7)
    samples = speech(1.0)
    # 1,600 samples end on frame 3's time at 30 fps: frames 0-2 are heard, frame 3 is not yet
    got = [[f.index for f in stream.push(samples[start : start + 1600])] for start in range(0, 4800, 1600)]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_a_slow_consumer_gets_the_newest_frames_and_the_older_ones_are_dropped(footage):
    params = with_params(footage.params, {"lookahead_ms": 100.0, "max_batch": 2})
    stream = LiveStream(footage.resolve(), params, mark_id=7)
    samples = speech(2.5)
    for start in range(0, len(samples), SR // 2):  # the consumer comes back every half second
        frames = stream.push(samples[start : start + SR // 2])
        assert len(frames) <= 2, "never more than live.max_batch frames at once"
        assert frames and frames[-1].index == stream.ready() - 1, "the newest frame: the mouth keeps time"
        assert [f.index for f in frames] == list(range(frames[0].index, frames[-1].index + 1))
    assert stream.dropped > 0.5 * stream.next and stream.dropped + stream.painted == stream.next


def offline_lips(footage, params: Params, samples: np.ndarray, gate: bool) -> np.ndarray:
    """What render() gives the generator for `samples` (render.py: clip_lips over the whole clip)."""
    target = footage.resolve(params)
    p = params.preprocess
    raw = speech_lips(footage.models, samples, SR, p.fps, p)
    if not gate:
        return clip_lips(target, params, raw)
    quiet = {"phones": False, "words": False, "whisper": False}
    loud = p.model_copy(update=quiet) if hasattr(p, "phones") else p
    loudness = audio_features(samples, SR, np.arange(len(raw)) / p.fps, loud)[:, LOG_ENERGY]
    return clip_lips(target, params, raw, loudness, target.closed)


def test_with_the_lstm_s_whole_window_heard_the_live_lips_are_the_offline_ones(footage):
    params = with_params(footage.params, {"lookahead_ms": 1000.0, "window_ms": 1000.0, "max_batch": 8},
                         {"align": "none", "silence_db": 0.0})
    samples = speech()
    live = np.stack([f.lips for f in run(LiveStream(footage.resolve(params), params), samples)])
    # Exact but for the phones: live, the decoder's best guess a second on (tasks/rows/phones.py:
    # PhoneStream); in a file, its final one. Whisper's windows, each heard once it ends, are a file's.
    layout = footage.models.lstm_artifact.feature_layout
    assert any(name.startswith("phone_") for name in layout) and "whisper_window_0" in layout
    np.testing.assert_allclose(live, offline_lips(footage, params, samples, gate=False), atol=2e-3)


def test_live_an_lstm_that_hears_words_hears_the_phone_loop_s_in_their_place(footage):
    """Words need the end of what is said: live, the phone loop's shares are heard in the words' place too,
    so the lips are the offline ones given those shares twice (with the whole window heard, as above)."""
    import dataclasses

    from tasks.rows.features import feature_layout
    from tasks.rows.phones import phone_features, phone_track

    layout = feature_layout(phones=True, words=True)
    models = random_lstm(footage.models, layout)
    params = with_params(footage.params, {"lookahead_ms": 1000.0, "window_ms": 1000.0, "max_batch": 8},
                         {"align": "none", "silence_db": 0.0})
    target = dataclasses.replace(footage.resolve(params), models=models)
    samples = speech()
    live = np.stack([f.lips for f in run(LiveStream(target, params), samples)])
    p = params.preprocess
    loop = phone_features(phone_track(samples, SR), np.arange(len(live)) / p.fps)
    raw = speech_lips(models, samples, SR, p.fps, p, np.concatenate([loop, loop], 1))
    np.testing.assert_allclose(live, clip_lips(target, params, raw), atol=2e-3)


def test_live_refuses_an_lstm_that_hears_whisper_s_blocks_naming_it(footage):
    """Whisper's 30-s blocks (preprocess.whisper: true, tasks/rows/whisper.py): live cannot wait for them,
    and says so before it starts (the windows it can: the default's, in the tests above)."""
    import dataclasses

    from tasks.rows.features import feature_layout

    artifact = dataclasses.replace(footage.models.lstm_artifact, feature_layout=feature_layout(whisper=True))
    models = dataclasses.replace(footage.models, lstm_artifact=artifact)
    target = dataclasses.replace(footage.resolve(), models=models)
    with pytest.raises(RenderError, match="states of 30-s blocks.*preprocess.whisper window or false"):
        LiveStream(target, footage.params)


def test_with_the_default_lookahead_the_mouth_opens_as_offline(footage):
    params = footage.params
    samples = speech()
    live = np.stack([f.lips for f in run(LiveStream(footage.resolve(), params), samples)])
    offline = offline_lips(footage, params, samples, gate=True)
    indices = footage.models.cgan_artifact.lip_indices
    live_open, offline_open = lips_opening(live, indices), lips_opening(offline, indices)
    assert offline_open.std() > 1e-3, "the offline mouth moves"
    assert np.corrcoef(live_open, offline_open)[0, 1] >= 0.9


def test_bad_speech_is_refused_naming_it(footage):
    stream = LiveStream(footage.resolve(), footage.params)
    with pytest.raises(RenderError, match="NaN or infinite"):
        stream.push(np.array([0.0, np.nan], np.float32))
