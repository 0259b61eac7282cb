"""Rendering end to end with real ffmpeg and real models: speech in any container -> an H.264 + AAC mp4
of the generated face (output "face"; tests/test_fullframe.py renders onto real footage). The models
and shards are tests/render_kit.py's `kit`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import soundfile
import torch
from helpers import reenact
from render_kit import SR, TINY, ffmpeg, probe, psnr, random_lstm, voice, voice_corpus, write_voice

from models.networks.cgan import generate_faces
from models.networks.unet import hard_mask
from models.records import LipsStats
from models.rendering import layouts
from models.rendering.render import RenderError, RenderOptions, render
from models.rendering.speech import frame_count, speech_lips, stream_lips
from models.rendering.target import pingpong, read_target_rows
from models.training.lips import align_lips, lips_moments, pooled_stats, smooth_lips
from tasks.config.params_loader import load_params
from tasks.rows.decode import iter_frames, read_audio
from tasks.rows.landmarks import lips_opening
from tasks.table.shards import read_frames


def check_video(
    path: Path, audio_seconds: float, size: tuple[int, int] = (128, 128), fps: float = 30.0
) -> dict:
    """H.264 yuv420p at fps and AAC, the video as long as the audio to one frame."""
    info = probe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["pix_fmt"], audio["codec_name"]) == ("h264", "yuv420p", "aac")
    assert (video["width"], video["height"]) == size
    num, den = map(int, video["r_frame_rate"].split("/"))
    assert num / den == pytest.approx(fps)
    assert float(video["duration"]) == pytest.approx(audio_seconds, abs=1 / fps + 1e-3)
    assert float(audio["duration"]) == pytest.approx(audio_seconds, abs=0.03)
    return info


def seconds_of(path: Path) -> float:
    """What decodes, not the container's estimate (an mp3's counts the encoder's padding)."""
    return len(read_audio(path, SR)) / SR


def test_face_output_is_the_target_crop_with_its_lower_face_painted(kit):
    """The frame generator's "face" output, before encoding: output frame i is target frame pingpong(i)'s
    own crop, exactly, outside the hard mask, and the generator's painting inside it."""
    models, target = kit.models, kit.target
    assert models.cgan_artifact.condition == "frame"
    rows = read_target_rows(kit.paths.shards, target, faces=True)
    frames = len(rows) + 30  # past the target's last frame: it plays backwards
    stats = models.cgan_artifact.lips_stats[target]
    lips = np.random.default_rng(0).multivariate_normal(stats.mean, stats.cov, frames).astype(np.float32)
    layout = layouts.Layout(kit.resolve(), kit.params, "face", None)
    stream = layout.frames(lips, np.hstack([lips, np.zeros((frames, 1), np.float32)]))
    assert (stream.width, stream.height) == (128, 128)
    painted = []
    for start, batch in stream.batches:
        for k, face in enumerate(batch):
            shown = pingpong(start + k, len(rows))
            crop, mask = rows.crops([shown])[0], hard_mask(rows.landmarks[shown], 128) > 0
            assert mask.any() == rows.face_found[shown]
            np.testing.assert_array_equal(face[~mask], crop[~mask])
            painted.append(np.abs(face[mask].astype(int) - crop[mask]).mean() if mask.any() else 0.0)
    assert start + len(batch) == frames
    assert np.mean(painted) > 1  # the lower face is the generator's


@pytest.fixture(scope="module")
def noise_kit(tiny_models):
    """The kit's corpus and settings with the paper's generator (cgan.condition: noise)."""
    lstm = {"lstm.epochs": 12, "lstm.batch_size": 32, "lstm.lr": 0.003, "cgan.batch_size": 16}
    render = {"render.size": 128, "render.output": "face", "cgan.condition": "noise"}
    return tiny_models("voice_noise", voice_corpus, {**TINY, **lstm, **render})


def test_the_noise_generator_still_renders_faces_from_its_noise(noise_kit, tmp_path):
    assert noise_kit.models.cgan_artifact.condition == "noise"
    write_voice(tmp_path / "speech.wav", 1.5, seed=1)
    noise = load_params(noise_kit.paths.params)
    result = render(tmp_path / "speech.wav", tmp_path / "talk.mp4", noise_kit.resolve(noise), noise,
                    RenderOptions(lips_out=tmp_path / "lips.npy"))
    check_video(tmp_path / "talk.mp4", 1.5)
    faces = generate_faces(noise_kit.models.generator, noise_kit.models.cgan_artifact,
                           np.load(tmp_path / "lips.npy"))
    decoded = list(iter_frames(tmp_path / "talk.mp4", 30.0))
    assert len(decoded) == result.frames == len(faces)
    assert np.median([psnr(out, face) for out, face in zip(decoded, faces)]) > 30  # its own faces, encoded


def test_render_wav_gives_h264_aac_as_long_as_the_audio(kit, tmp_path):
    write_voice(tmp_path / "speech.wav", 2.5, seed=1)
    params = load_params(kit.paths.params, {"render.size": 256})
    result = render(tmp_path / "speech.wav", tmp_path / "talk.mp4", kit.resolve(params), params)
    check_video(tmp_path / "talk.mp4", 2.5, size=(256, 256))
    assert result.frames == 75 and result.audio_seconds == pytest.approx(2.5)
    assert result.target == kit.target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav", "talk.mp4"]


@pytest.mark.parametrize("suffix, codec", [(".mp3", "libmp3lame"), (".m4a", "aac")])
def test_render_stereo_44k_compressed_audio(kit, tmp_path, suffix, codec):
    stereo = np.stack([voice(1.7, 44100, seed=2), voice(1.7, 44100, seed=3)], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, 44100)
    source = tmp_path / f"speech{suffix}"
    ffmpeg("-i", str(tmp_path / "stereo.wav"), "-c:a", codec, "-b:a", "128k", str(source))
    render(source, tmp_path / "talk.mp4", kit.resolve(kit.params), kit.params)
    info = check_video(tmp_path / "talk.mp4", seconds_of(source))
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (audio["channels"], audio["sample_rate"]) == (2, "44100")


@pytest.mark.parametrize("block_seconds", [60, 1])
def test_chunked_lips_equal_whole_file_lips(footage, monkeypatch, block_seconds):
    """Also when the phones are decoded in several blocks (tasks/rows/phones.py: BLOCK_S made short)."""
    from tasks.rows import phones

    monkeypatch.setattr(phones, "BLOCK_S", block_seconds)
    kit = footage  # trained on the demo's espeak speech: it hears phones
    assert any(name.startswith("phone_") for name in kit.models.lstm_artifact.feature_layout)
    samples = voice(4.3, seed=4)
    p = kit.params.preprocess
    whole = speech_lips(kit.models, samples, SR, p.fps, p)
    assert whole.shape == (frame_count(len(samples), SR, p.fps), 16) == (129, 16)
    cuts = np.cumsum([0, 1000, 7919, 3, 20000, 12345])
    blocks = [samples[a:b] for a, b in zip(cuts, [*cuts[1:], len(samples)])]
    for chunk in (17, 40, 1000):
        pieces = list(stream_lips(kit.models, iter(blocks), SR, p.fps, p, chunk_frames=chunk))
        chunked = np.concatenate([lips for lips, _ in pieces])
        assert chunked.shape == whole.shape
        np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_an_lstm_that_hears_words_renders_them_chunk_by_chunk_as_whole(footage, monkeypatch):
    """An LSTM whose layout holds the words' phone shares too (preprocess.words) is fed them in a render,
    decoded block by block as the speech streams in, as a whole-file pass gets them, in a project whose
    own preprocess has no words (what an LSTM hears is its own)."""
    from tasks.rows import phones
    from tasks.rows.features import feature_layout

    monkeypatch.setattr(phones, "BLOCK_S", 2)
    layout = feature_layout(phones=True, words=True)
    models = random_lstm(footage.models, layout)
    samples, p = voice(4.3, seed=4), footage.params.preprocess.model_copy(update={"words": False})
    whole = speech_lips(models, samples, SR, p.fps, p)
    assert whole.shape == (129, 16)
    cuts = np.cumsum([0, 1000, 7919, 3, 20000, 12345])
    blocks = [samples[a:b] for a, b in zip(cuts, [*cuts[1:], len(samples)])]
    pieces = list(stream_lips(models, iter(blocks), SR, p.fps, p, chunk_frames=40))
    assert all(features.shape[1] == len(layout) == 108 for _, features in pieces)
    np.testing.assert_allclose(np.concatenate([lips for lips, _ in pieces]), whole, atol=1e-5)


def test_an_lstm_that_hears_whisper_renders_it_chunk_by_chunk_as_whole(footage, monkeypatch):
    """An LSTM whose layout holds Whisper's states (preprocess.whisper) is fed them in a render, encoded
    block by block as the speech streams in (tasks/rows/whisper.py: BLOCK_S made short), as a whole-file
    pass encodes them, in a project whose own preprocess has none."""
    from tasks.rows import whisper
    from tasks.rows.features import feature_layout

    monkeypatch.setattr(whisper, "BLOCK_S", 1)
    layout = feature_layout(phones=True, whisper=True)
    models = random_lstm(footage.models, layout)
    samples, p = voice(2.3, seed=4), footage.params.preprocess.model_copy(update={"whisper": False})
    whole = speech_lips(models, samples, SR, p.fps, p)
    assert whole.shape == (69, 16)
    cuts = np.cumsum([0, 1000, 7919, 3, 12345])
    blocks = [samples[a:b] for a, b in zip(cuts, [*cuts[1:], len(samples)])]
    pieces = list(stream_lips(models, iter(blocks), SR, p.fps, p, chunk_frames=20))
    assert all(features.shape[1] == len(layout) == 452 for _, features in pieces)
    np.testing.assert_allclose(np.concatenate([lips for lips, _ in pieces]), whole, atol=1e-5)


def test_the_default_lstm_s_linear_map_hears_whisper_s_windows_chunk_by_chunk_as_whole(footage):
    """The default (preprocess.whisper: window, lstm.linear_share): the windows are encoded as the speech
    streams in (tasks/rows/whisper.py: WhisperWindows), and a render's chunks hear what a whole pass does;
    without them the lips are other lips."""
    import dataclasses

    artifact, p = footage.models.lstm_artifact, footage.params.preprocess
    assert artifact.linear is not None and "whisper_window_0" in artifact.feature_layout
    samples = voice(2.9, seed=6)
    whole = speech_lips(footage.models, samples, SR, p.fps, p)
    cuts = np.cumsum([0, 1000, 7919, 3, 12345])
    blocks = [samples[a:b] for a, b in zip(cuts, [*cuts[1:], len(samples)])]
    pieces = list(stream_lips(footage.models, iter(blocks), SR, p.fps, p, chunk_frames=20))
    np.testing.assert_allclose(np.concatenate([lips for lips, _ in pieces]), whole, atol=1e-5)
    alone = dataclasses.replace(footage.models, lstm_artifact=dataclasses.replace(artifact, linear=None))
    assert np.abs(speech_lips(alone, samples, SR, p.fps, p) - whole).max() > 1e-3


def test_render_lips_do_not_depend_on_the_chunk_size(kit, tmp_path):
    write_voice(tmp_path / "speech.wav", 3.4, seed=5)
    lips = {}
    for seconds in (1.0, 10.0):
        params = load_params(kit.paths.params, {"render.chunk_seconds": seconds, "render.smooth_window": 5})
        render(
            tmp_path / "speech.wav",
            tmp_path / "talk.mp4",
            kit.resolve(params),
            params,
            RenderOptions(lips_out=tmp_path / f"{seconds}.npy"))
        lips[seconds] = np.load(tmp_path / f"{seconds}.npy")
    assert lips[1.0].shape == (102, 16)
    np.testing.assert_allclose(lips[1.0], lips[10.0], atol=1e-5)


def random_stats(rng, frames: int = 4000) -> tuple[np.ndarray, LipsStats]:
    """Lips of a well-conditioned random Gaussian (every direction moves) and their statistics."""
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    basis = rotation * rng.uniform(0.005, 0.015, 16)
    lips = 0.5 + rng.normal(size=(frames, 16)) @ basis
    return lips, lips_moments(lips)


def test_align_lips_matches_the_target_statistics():
    rng = np.random.default_rng(0)
    lips, _ = random_stats(rng)
    _, target = random_stats(rng)
    aligned = align_lips(lips, target).astype(np.float64)
    np.testing.assert_allclose(aligned.mean(0), target.mean, atol=1e-5)
    cov = np.cov(aligned, rowvar=False)
    assert np.linalg.norm(cov - target.cov) < 0.03 * np.linalg.norm(target.cov)
    # the optimal transport map: the identity when source and target agree
    np.testing.assert_allclose(align_lips(lips, lips_moments(lips)), lips, atol=1e-3)


def test_align_lips_keeps_silence_finite():
    rng = np.random.default_rng(1)
    _, target = random_stats(rng)
    prior_lips, prior = random_stats(rng)
    constant = np.tile(prior_lips[0], (50, 1))
    aligned = align_lips(constant, target)
    assert np.isfinite(aligned).all()
    np.testing.assert_allclose(aligned, np.tile(target.mean, (50, 1)), atol=1e-6)
    with_prior = align_lips(constant, target, prior=prior)
    assert np.isfinite(with_prior).all() and np.ptp(with_prior, axis=0).max() == 0
    assert np.isfinite(align_lips(prior_lips[:1], target)).all()


def test_pooled_stats_and_smoothing():
    rng = np.random.default_rng(2)
    lips, whole = random_stats(rng, 300)
    pooled = pooled_stats({"a": lips_moments(lips[:100]), "b": lips_moments(lips[100:])})
    np.testing.assert_allclose(pooled.mean, whole.mean)
    np.testing.assert_allclose(pooled.cov, whole.cov, atol=1e-12)
    np.testing.assert_array_equal(smooth_lips(lips, 1), lips.astype(np.float32))
    ramp = np.repeat(np.arange(10, dtype=np.float32)[:, None], 16, 1)
    smoothed = smooth_lips(ramp, 5)
    np.testing.assert_allclose(smoothed[2:-2], ramp[2:-2], atol=1e-6)
    np.testing.assert_allclose(smoothed[0], 1.0)  # the mean of frames 0..2
    with pytest.raises(ValueError):
        smooth_lips(ramp, 4)


@pytest.mark.parametrize("kind", ["empty", "text", "video_only", "missing"])
def test_bad_input_is_a_render_error_and_leaves_no_file(kit, tmp_path, kind):
    source = (
        tmp_path
        / {
            "empty": "empty.wav",
            "text": "notes.txt",
            "video_only": "silent_film.mp4",
            "missing": "nowhere.wav",
        }[kind]
    )
    if kind == "empty":
        source.write_bytes(b"")
    elif kind == "text":
        source.write_text("this is not audio\n" * 20)
    elif kind == "video_only":
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=30", "-t", "1", str(source))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(RenderError, match=source.name):
        render(source, tmp_path / "talk.mp4", kit.resolve(kit.params), kit.params)
    assert sorted(tmp_path.iterdir()) == before


def test_a_failure_midway_leaves_no_broken_mp4(kit, tmp_path, monkeypatch):
    write_voice(tmp_path / "speech.wav", 2.0)
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise MemoryError("out of memory")
        return real_generate(*args, **kwargs)

    real_generate = layouts.generate_faces
    monkeypatch.setattr(layouts, "generate_faces", failing)
    params = load_params(kit.paths.params, {"render.batch_size": 16})
    with pytest.raises(MemoryError):
        render(tmp_path / "speech.wav", tmp_path / "talk.mp4", kit.resolve(params), params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav"]


def test_the_next_batch_is_painted_on_a_thread_of_its_own_while_this_one_is_used():
    made = []

    def batches():
        for k in range(4):
            made.append((k, threading.current_thread().name))
            yield k, [np.full(2, k)]

    assert [k for k, _ in layouts.ahead(batches())] == [0, 1, 2, 3]
    assert all(name.startswith("reenact-paint") for _, name in made)

    def counted():  # the worker paints on as many torch threads as its caller
        yield 0, [torch.get_num_threads()]

    threads = torch.get_num_threads()
    try:
        for asked in (1, 2):
            torch.set_num_threads(asked)
            assert next(layouts.ahead(counted()))[1] == [asked]
    finally:
        torch.set_num_threads(threads)
    made.clear()
    early = layouts.ahead(batches())
    assert next(early)[0] == 0
    for _ in range(100):  # the next one is made while this one is used, and no more
        if len(made) == 2:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    assert [k for k, _ in made] == [0, 1]
    early.close()
    assert [k for k, _ in made] == [0, 1]


def test_a_tenth_of_a_second_gives_three_frames(kit, tmp_path):
    write_voice(tmp_path / "blip.wav", 0.1)
    result = render(tmp_path / "blip.wav", tmp_path / "blip.mp4", kit.resolve(kit.params), kit.params)
    assert result.frames == 3
    info = check_video(tmp_path / "blip.mp4", 0.1)
    assert int(next(s for s in info["streams"] if s["codec_type"] == "video")["nb_frames"]) == 3


def test_silence_gives_a_still_closed_mouth(kit, tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(2 * SR, np.float32), SR)
    render(
        tmp_path / "silence.wav",
        tmp_path / "silence.mp4",
        kit.resolve(kit.params),
        kit.params,
        RenderOptions(lips_out=tmp_path / "lips.npy"))
    check_video(tmp_path / "silence.mp4", 2.0)
    lips = np.load(tmp_path / "lips.npy")
    assert np.isfinite(lips).all() and np.ptp(lips, axis=0).max() < 1e-6
    target = kit.models.cgan_artifact.lips_stats[kit.models.cgan_artifact.target_video]
    indices = kit.models.cgan_artifact.lip_indices
    assert lips_opening(lips[:1], indices)[0] < lips_opening(target.mean[None], indices)[0]


SIZE, LABEL = 128, 24  # the tiles' side; the rows of a tile's label, left out of comparisons
# The real tile against the crop it shows, after H.264: 36 dB at the least on the kit. Against the same
# frame of another corpus video, or the frame of its own video least like it: 24 dB at the most.
SAME_FRAME_PSNR = 30.0


def real_tiles(panel: Path) -> list[np.ndarray]:
    """The "real" tile of each frame of a face_panel (the left square, below its label)."""
    return [frame[LABEL:SIZE, :SIZE] for frame in iter_frames(panel, 30.0)]


def corpus_faces(shards: Path, video_id: str) -> list[np.ndarray | None]:
    """The face crop of each frame of a corpus video as the shards hold it, below the label rows
    (None: no face)."""
    table = read_frames(shards, video_id, ["face", "face_found"])
    return [
        simplejpeg.decode_jpeg(jpeg, colorspace="RGB")[LABEL:SIZE] if found else None
        for jpeg, found in zip(table.column("face").to_pylist(), table.column("face_found").to_pylist())
    ]


def least_like(faces: list[np.ndarray | None], index: int) -> np.ndarray:
    """The face of the video that differs most from frame `index`'s."""
    return max((f for f in faces if f is not None), key=lambda f: np.abs(f.astype(int) - faces[index]).mean())


def test_panel_shows_the_real_frames_of_a_corpus_video(kit, tmp_path):
    def panel(audio: Path, name: str, **real) -> Path:
        render(audio, tmp_path / name, kit.resolve(kit.params), kit.params,
               RenderOptions(output="face_panel", **real))
        return tmp_path / name

    source = kit.paths.videos / "synthetic_1.mp4"  # <videos>/<id>.mp4: found by its path
    check_video(panel(source, "found.mp4"), seconds_of(source), size=(3 * SIZE, SIZE + 64))
    write_voice(tmp_path / "speech.wav", 1.0)
    check_video(panel(tmp_path / "speech.wav", "alone.mp4"), 1.0, size=(2 * SIZE, SIZE + 64))
    named = panel(tmp_path / "speech.wav", "named.mp4", real="synthetic_0")
    check_video(named, 1.0, size=(3 * SIZE, SIZE + 64))

    faces = {video: corpus_faces(kit.paths.shards, video) for video in ("synthetic_0", "synthetic_1")}
    for video, other, path in (("synthetic_1", "synthetic_0", tmp_path / "found.mp4"),
                               ("synthetic_0", "synthetic_1", named)):
        tiles = real_tiles(path)[: len(faces[video])]  # past the video's last frame: "no face"
        shown = [(i, tile) for i, tile in enumerate(tiles) if faces[video][i] is not None]
        assert len(shown) >= 25
        for i, tile in shown:
            assert psnr(tile, faces[video][i]) > SAME_FRAME_PSNR, (video, i)  # frame i of the real video
            assert psnr(tile, faces[other][i]) < SAME_FRAME_PSNR, (video, i)
            assert psnr(tile, least_like(faces[video], i)) < SAME_FRAME_PSNR, (video, i)


def test_cli_renders_and_reports_bad_input_in_one_line(kit, tmp_path):
    write_voice(tmp_path / "speech.wav", 1.5)
    project = ["--face-only", "--root", str(kit.paths.root)]
    done = reenact("render", "--audio", "speech.wav", "--out", "talk.mp4", *project, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    check_video(tmp_path / "talk.mp4", 1.5)
    (tmp_path / "notes.txt").write_text("not audio")
    failed = reenact("render", "--audio", "notes.txt", "--out", "bad.mp4", *project, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0 and "notes.txt" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.real_media
def test_real_speech_from_another_speaker_moves_the_mouth_with_loudness(kit, tmp_path, real_speech):
    options = RenderOptions(lips_out=tmp_path / "lips.npy")
    result = render(real_speech, tmp_path / "talk.mp4", kit.resolve(kit.params), kit.params, options)
    check_video(tmp_path / "talk.mp4", seconds_of(real_speech))
    lips = np.load(tmp_path / "lips.npy")
    opening = lips_opening(lips, kit.models.cgan_artifact.lip_indices)
    assert len(opening) == result.frames and opening.std() > 0
    samples = read_audio(real_speech, SR)
    window = round(0.04 * SR)
    centres = (np.arange(len(opening)) / 30 * SR).astype(int)
    padded = np.pad(samples, window)
    loudness = np.array(
        [np.sqrt(np.mean(padded[c + window // 2 : c + window + window // 2] ** 2)) for c in centres]
    )
    assert np.corrcoef(opening, loudness)[0, 1] > 0.2
