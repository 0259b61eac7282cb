"""Full-frame rendering end to end: real demo footage (tasks/demo.py), preprocessed by the real pipeline,
tiny models trained by the real entry points, the lower face composited into the target's own frames.
What is checked is what a viewer gets: the mp4's size and length, the frames outside the mask, the
timing of the target's frames when the speech outlasts them, the stage's outputs and the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import params_copy, train_tiny

from models import render as render_module
from models.composite import lower_face_mask, warp_back
from models.render import RenderError, RenderOptions, load_models, render
from models.target import TargetFrames, pingpong, read_target_rows
from tasks.decode import iter_frames, probe
from tasks.demo import make_demo_corpus
from tasks.params import DemoParams
from tasks.paths import Paths
from tasks.video import process_video

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
FPS = 30.0


@dataclass
class Footage:
    root: Path
    params_file: Path
    params: object
    overrides: dict
    videos: Path
    shards: Path
    models: object
    target: str


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Three 2 s demo clips as raw videos and shards, and tiny models trained on them."""
    root = tmp_path_factory.mktemp("fullframe")
    overrides = {"device": "cpu", "render.size": 128}
    params_file, params = params_copy(root, overrides)
    videos = root / "raw" / "videos"
    videos.mkdir(parents=True)
    shards = root / "shards"
    for path in make_demo_corpus(videos, DemoParams(clips=3, seconds=2.0, seed=7)):
        assert process_video(path, shards, params.preprocess)["status"] == "ok"

    train_tiny(
        params_file,
        shards,
        root,
        ["lstm.epochs=2", "lstm.hidden=16", "lstm.fc_hidden=16", "lstm.context=2"],
        ["cgan.epochs=1", "cgan.finetune_epochs=0", "cgan.ngf=4", "cgan.ndf=4", "cgan.val_frames=8"],
    )
    models = load_models(root / "lstm.pt", root / "cgan.pt", "cpu")
    return Footage(
        root, params_file, params, overrides, videos, shards, models, models.cgan_artifact.target_video
    )


def speech(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    envelope = np.clip(np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)), 0, None)
    soundfile.write(path, (0.3 * envelope * np.sin(2 * np.pi * 140 * t)).astype(np.float32), SR)
    return path


def video_info(path: Path) -> tuple[int, int, float, str, str]:
    info = probe(path)
    return info.width, info.height, info.duration, *_codecs(path)


def _codecs(path: Path) -> tuple[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], out[1]


def outside_masks(rows, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels of target frame `index` that compositing leaves alone."""
    if not rows.face_found[index]:
        return np.ones(shape[:2], bool)
    alpha = warp_back(
        lower_face_mask(rows.landmarks[index], 128), rows.crop[index], (0, 0, shape[1], shape[0]), 1
    )
    return alpha <= 1e-3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_full_frame_render_is_the_target_outside_the_mouth(footage, tmp_path):
    source = next(p for p in sorted(footage.videos.glob("*.mp4")) if p.stem != footage.target)
    result = render(
        source,
        tmp_path / "talk.mp4",
        footage.models,
        footage.params,
        Paths.at(footage.root, shards=footage.shards, videos=footage.videos),
    )
    assert result["output"] == "full" and result["target"] == footage.target
    width, height, duration, video_codec, audio_codec = video_info(tmp_path / "talk.mp4")
    assert (width, height, video_codec, audio_codec) == (512, 512, "h264", "aac")
    assert duration == pytest.approx(result["audio_seconds"], abs=1.5 / FPS)
    rows = read_target_rows(footage.shards, footage.target)
    target_file = footage.videos / f"{footage.target}.mp4"
    target = list(iter_frames(target_file, FPS))
    changed = []
    for index, out in enumerate(iter_frames(tmp_path / "talk.mp4", FPS)):
        shown = pingpong(index, len(target))  # the speech (AAC-padded) is a frame or two longer
        real, outside = target[shown], outside_masks(rows, shown, out.shape)
        assert psnr(out[outside], real[outside]) > 35, index
        changed.append(psnr(out[~outside], real[~outside]) if (~outside).any() else np.inf)
    assert index == result["frames"] - 1
    assert np.median(changed) < 30  # the lower face is the generator's, not the target's


def test_speech_longer_than_the_target_plays_it_forward_and_back(footage, tmp_path):
    result = render(
        speech(tmp_path / "long.wav", 5.0),
        tmp_path / "long.mp4",
        footage.models,
        footage.params,
        Paths.at(footage.root, shards=footage.shards, videos=footage.videos),
    )
    frames = round(5.0 * FPS)
    assert result["frames"] == frames and video_info(tmp_path / "long.mp4")[2] == pytest.approx(
        5.0, abs=1.5 / FPS
    )
    target = list(iter_frames(footage.videos / f"{footage.target}.mp4", FPS))
    upper = slice(0, 200)  # forehead and hair: never composited, so they tell which target frame is shown
    expected = [pingpong(i, len(target)) for i in range(frames)]
    assert set(np.abs(np.diff(expected))) == {1}  # no frozen stretch, no jump
    outputs = list(iter_frames(tmp_path / "long.mp4", FPS))
    assert len(outputs) == frames
    for out, index in zip(outputs, expected):
        assert psnr(out[upper], target[index][upper]) > 35  # that very frame, up to re-encoding
        # and no other frame fits better, but for a neighbour the slight head motion barely moves
        best = int(np.argmin([np.abs(out[upper].astype(int) - t[upper]).mean() for t in target]))
        assert abs(best - index) <= 1


def test_target_frames_come_in_pingpong_order_across_segments(footage, monkeypatch):
    from models import target as target_module

    monkeypatch.setattr(target_module, "SEGMENT_BYTES", 512 * 512 * 3 * 7)  # 7-frame segments backwards
    path = footage.videos / f"{footage.target}.mp4"
    forward = list(iter_frames(path, FPS))
    stream = TargetFrames(path, FPS, len(forward))
    for i, (index, frame) in enumerate(stream(3 * len(forward))):
        assert index == pingpong(i, len(forward))
        np.testing.assert_array_equal(frame, forward[index])


def test_dvc_stage_renders_the_full_frame_and_the_panel(footage, tmp_path, capsys):
    render_module.main(
        [
            "--params",
            str(footage.params_file),
            "--shards",
            str(footage.shards),
            "--videos",
            str(footage.videos),
            "--lstm",
            str(footage.root / "lstm.pt"),
            "--cgan",
            str(footage.root / "cgan.pt"),
            "--root",  # the renders go to <root>/renders
            str(tmp_path),
            "--override",
            "device=cpu",
        ]
    )
    renders = tmp_path / "renders"
    assert sorted(p.name for p in renders.iterdir()) == ["demo.mp4", "demo_panel.mp4"]
    assert capsys.readouterr().out.count("render: ") == 2
    assert video_info(renders / "demo.mp4")[:2] == (512, 512)
    assert video_info(renders / "demo_panel.mp4")[:2] == (1024, 512 + 128)


def test_unknown_target_is_a_render_error_naming_it(footage, tmp_path):
    with pytest.raises(RenderError, match="nobody"):
        render(
            speech(tmp_path / "s.wav", 0.5),
            tmp_path / "x.mp4",
            footage.models,
            footage.params,
            Paths.at(footage.root, shards=footage.shards, videos=footage.videos),
            RenderOptions(target="nobody"),
        )
    assert not (tmp_path / "x.mp4").exists()


def test_cli_renders_full_frame_onto_a_chosen_target(footage, tmp_path):
    other = next(p.stem for p in sorted(footage.videos.glob("*.mp4")) if p.stem != footage.target)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "render",
            "--audio",
            str(speech(tmp_path / "s.wav", 1.0)),
            "--out",
            str(tmp_path / "talk.mp4"),
            "--target",
            other,
            "--params",
            str(footage.params_file),
            "--override",
            "device=cpu",
            "--lstm",
            str(footage.root / "lstm.pt"),
            "--cgan",
            str(footage.root / "cgan.pt"),
            "--shards",
            str(footage.shards),
            "--videos",
            str(footage.videos),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"on {other} (full)" in done.stdout
    assert video_info(tmp_path / "talk.mp4")[:2] == (512, 512)


@pytest.mark.slow
@pytest.mark.real_media
def test_real_speech_composited_onto_a_real_face(real_clip, real_speech, tmp_path):
    """The generator fine-tuned briefly on a real talking head (25 fps, resampled to 30), then another
    speaker's speech composited onto that clip: what a user does with their own footage (README)."""
    from tasks import landmarks as lm

    params_file, params = params_copy(tmp_path, {"device": "cpu"})
    videos, shards = tmp_path / "raw" / "videos", tmp_path / "shards"
    videos.mkdir(parents=True)
    clip = videos / "real_target.mp4"
    clip.write_bytes(real_clip.read_bytes())
    assert process_video(clip, shards, params.preprocess)["status"] == "ok"
    train_tiny(
        params_file,
        shards,
        tmp_path,
        ["lstm.epochs=5", "lstm.hidden=32", "lstm.fc_hidden=32"],
        ["cgan.epochs=6", "cgan.finetune_epochs=2", "cgan.target_video=real_target"],
    )
    models = load_models(tmp_path / "lstm.pt", tmp_path / "cgan.pt", "cpu")
    result = render(
        real_speech, tmp_path / "talk.mp4", models, params, Paths.at(tmp_path, shards=shards, videos=videos),
        RenderOptions(target="real_target"),
    )
    assert video_info(tmp_path / "talk.mp4")[:2] == (512, 512)
    rows = read_target_rows(shards, "real_target")
    target = list(iter_frames(clip, FPS))
    found, quality = 0, []
    for index, out in enumerate(iter_frames(tmp_path / "talk.mp4", FPS)):
        shown = pingpong(index, len(target))
        outside = outside_masks(rows, shown, out.shape)
        quality.append(psnr(out[outside], target[shown][outside]))
        found += lm.find_landmarks(out) is not None
    assert index + 1 == result["frames"]
    assert min(quality) >= 35
    assert found / result["frames"] >= 0.95


def test_a_target_of_odd_size_gives_an_even_video_of_its_frames(footage, tmp_path):
    """641x361 footage (H.264 needs even sides): the mp4 is 640x360, the frame's last column and row gone."""
    videos, shards = tmp_path / "videos", tmp_path / "shards"
    videos.mkdir()
    source = footage.videos / f"{footage.target}.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(source),
            "-vf",
            "scale=361:361,pad=641:361:140:0",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
            "-crf",
            "12",
            "-c:a",
            "copy",
            str(videos / "odd.mp4"),
        ],
        check=True,
    )
    assert process_video(videos / "odd.mp4", shards, footage.params.preprocess)["status"] == "ok"
    result = render(
        speech(tmp_path / "s.wav", 1.0),
        tmp_path / "odd.mp4",
        footage.models,
        footage.params,
        Paths.at(tmp_path, shards=shards, videos=videos),
        RenderOptions(target="odd"),
    )
    assert video_info(tmp_path / "odd.mp4")[:2] == (640, 360)
    target = list(iter_frames(videos / "odd.mp4", FPS))
    first = next(iter_frames(tmp_path / "odd.mp4", FPS))
    assert psnr(first[:, :120], target[0][:360, :120]) > 35  # the background left of the face, untouched
    assert result["frames"] == 30
