"""The demo corpus, checked the way the pipeline will use it: decoded with ffmpeg, read with dlib."""

from __future__ import annotations

import re

import ffmpeg
import numpy as np
import pytest
import soundfile as sf

from tasks.config.params import DemoParams, PreprocessParams
from tasks.demo.corpus import DemoError, _encode, make_clip, make_demo_corpus, mouth_drive
from tasks.rows.decode import iter_frames, probe, read_audio
from tasks.rows.landmarks import find_landmarks, lips_opening

SECONDS = 4.0
SAMPLE_RATE = 16000
LIP_INDICES = PreprocessParams().lip_indices


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("demo") / "clip.mp4", SECONDS, seed=3, params=DemoParams())


def first_frame(path):
    return next(iter(iter_frames(path, 30)))


def test_clip_is_h264_aac_512_at_30_fps(clip):
    codecs = {s["codec_type"]: s for s in ffmpeg.probe(str(clip))["streams"]}
    assert codecs["video"]["codec_name"] == "h264" and codecs["video"]["pix_fmt"] == "yuv420p"
    assert codecs["audio"]["codec_name"] == "aac"
    info = probe(clip)
    assert (info.width, info.height, info.fps) == (512, 512, 30.0)
    assert info.duration == pytest.approx(SECONDS, abs=1 / 30)
    assert sum(1 for _ in iter_frames(clip, 30)) == round(SECONDS * 30)
    # Decoded AAC runs on to the end of its last 1024-sample frame (espeak-ng speaks at 22050 Hz).
    samples = len(read_audio(clip, SAMPLE_RATE))
    assert SECONDS * SAMPLE_RATE <= samples <= (SECONDS + 1024 / 22050) * SAMPLE_RATE


def test_dlib_finds_the_face_and_its_mouth_follows_the_loudness(clip):
    audio = read_audio(clip, SAMPLE_RATE)
    half = int(0.02 * SAMPLE_RATE)
    padded = np.pad(audio, (half, half))
    openings, loudness, frames = [], [], 0
    for i, frame in enumerate(iter_frames(clip, 30)):
        frames += 1
        landmarks = find_landmarks(frame)
        if landmarks is None:
            continue
        start = round(i * SAMPLE_RATE / 30)  # window centred on the frame's time
        openings.append(lips_opening(landmarks[None, LIP_INDICES], LIP_INDICES)[0])
        loudness.append(np.sqrt(np.mean(padded[start : start + 2 * half] ** 2)))
    assert len(openings) >= 0.95 * frames
    assert np.corrcoef(openings, loudness)[0, 1] >= 0.5
    assert max(openings) > 15, "the mouth should open visibly at 512 px"


def test_same_seed_same_clip_other_seed_other_clip(tmp_path):
    one, again, other = (
        make_clip(tmp_path / f"{name}.mp4", 1.5, seed=seed, params=DemoParams())
        for name, seed in (("one", 3), ("again", 3), ("other", 4))
    )
    assert np.array_equal(first_frame(again), first_frame(one))
    assert np.array_equal(read_audio(again), read_audio(one))
    assert not np.array_equal(first_frame(other), first_frame(one))
    assert not np.array_equal(read_audio(other), read_audio(one))


def test_corpus_names_clips_demo_00_and_leaves_no_temporary_files(tmp_path):
    paths = make_demo_corpus(tmp_path, DemoParams(clips=2, seconds=1.0, seed=5))
    assert [p.name for p in paths] == ["demo_00.mp4", "demo_01.mp4"]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", p.stem) for p in paths)
    assert sorted(tmp_path.iterdir()) == paths
    assert all(probe(p).duration == pytest.approx(1.0, abs=1 / 30) for p in paths)


def test_an_encode_that_fails_half_way_leaves_nothing(tmp_path):
    out = tmp_path / "videos" / "clip.mp4"
    wav = tmp_path / "speech.wav"
    sf.write(wav, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    params = DemoParams()

    def frames():
        """Frames until ffmpeg has started writing the temporary mp4, then a failure."""
        for _ in range(600):
            if list(out.parent.glob(".clip.*.tmp.mp4")):
                raise RuntimeError("the renderer died")
            yield np.zeros((params.size, params.size, 3), np.uint8)

    with pytest.raises(RuntimeError, match="the renderer died"):
        _encode(out, frames(), wav, params)
    assert list(out.parent.iterdir()) == []


def test_missing_espeak_is_a_clear_error(tmp_path):
    with pytest.raises(DemoError, match="no-such-espeak-ng.*not found.*apt-get install espeak-ng"):
        make_clip(tmp_path / "x.mp4", 1.0, seed=0, params=DemoParams(), espeak="no-such-espeak-ng")
    with pytest.raises(DemoError, match="espeak-ng"):
        make_demo_corpus(tmp_path, DemoParams(clips=1, seconds=1.0), espeak="no-such-espeak-ng")
    assert list(tmp_path.iterdir()) == []


def test_drive_opens_with_loudness_and_rounds_low_sounds():
    rate, fps = 16000, 30
    t = np.arange(rate) / rate
    tones = [0.5 * np.sin(2 * np.pi * hz * t) for hz in (300, 1000, 2500)]
    audio = np.concatenate([np.zeros(rate), *tones]).astype(np.float32)
    opening, width = mouth_drive(audio, rate, 4 * fps, fps)
    assert np.all(opening[:25] == 0) and np.all(width[:25] == 0), "silence: mouth closed and neutral"
    assert opening[35:115].min() > 0.9
    assert width[35:55].max() < -0.5 and width[95:115].min() > 0.5, (
        "a low centroid rounds, a high one spreads"
    )
