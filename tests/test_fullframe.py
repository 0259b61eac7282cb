"""Full-frame rendering end to end: real demo footage (tasks/demo/corpus.py), preprocessed by the real
pipeline,
tiny models trained by the real entry points, the lower face composited into the target's own frames.
What is checked is what a viewer gets: the mp4's size and length, the frames outside the mask, the
timing of the target's frames when the speech outlasts them, the stage's outputs and the CLI.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import reenact
from render_kit import ffmpeg, probe, psnr, write_voice

from models.networks.mask import lower_face_mask
from models.rendering import render as render_module
from models.rendering.composite import warp_back
from models.rendering.layouts import Layout
from models.rendering.render import RenderError, render
from models.rendering.target import TargetFrames, pingpong, read_target_rows
from tasks.config.paths import Paths
from tasks.ingest.video import process_video
from tasks.rows.decode import iter_frames

FPS = 30.0
LABEL = 24  # the rows of a panel tile's label, left out of comparisons
# The panel's target tile against the frame it shows, after H.264: 36.7 dB at the least on the demo
# footage. The composite beside it (the same frame, its lower face painted by the frame generator) is
# further from it, by 0.4 to 8 dB (by ~10 dB with the noise generator's whole face).
SAME_FRAME_PSNR = 33.0


def video_info(path: Path) -> tuple[int, int, float, str, str]:
    """(width, height, duration, video codec, audio codec)."""
    info = probe(path)
    streams = {stream["codec_type"]: stream for stream in info["streams"]}
    video, audio = streams["video"], streams["audio"]
    duration = float(info["format"]["duration"])
    return video["width"], video["height"], duration, video["codec_name"], audio["codec_name"]


def outside_masks(rows, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels of target frame `index` that compositing leaves alone."""
    if not rows.face_found[index]:
        return np.ones(shape[:2], bool)
    alpha = warp_back(
        lower_face_mask(rows.landmarks[index], 128), rows.crop[index], (0, 0, shape[1], shape[0]), 1
    )
    return alpha <= 1e-3


def test_full_frame_render_is_the_target_outside_the_mouth(footage, tmp_path):
    source = next(p for p in sorted(footage.paths.videos.glob("*.mp4")) if p.stem != footage.target)
    result = render(
        source,
        tmp_path / "talk.mp4",
        footage.resolve(footage.params),
        footage.params)
    assert result.output == "full" and result.target == footage.target
    width, height, duration, video_codec, audio_codec = video_info(tmp_path / "talk.mp4")
    assert (width, height, video_codec, audio_codec) == (512, 512, "h264", "aac")
    assert duration == pytest.approx(result.audio_seconds, abs=1.5 / FPS)
    rows = read_target_rows(footage.paths.shards, footage.target)
    target_file = footage.paths.videos / f"{footage.target}.mp4"
    target = list(iter_frames(target_file, FPS))
    changed = []
    for index, out in enumerate(iter_frames(tmp_path / "talk.mp4", FPS)):
        shown = pingpong(index, len(target))  # the speech (AAC-padded) is a frame or two longer
        real, outside = target[shown], outside_masks(rows, shown, out.shape)
        assert psnr(out[outside], real[outside]) > 35, index
        changed.append(psnr(out[~outside], real[~outside]) if (~outside).any() else np.inf)
    assert index == result.frames - 1
    assert np.median(changed) < 30  # the lower face is the generator's, not the target's


def test_a_frame_render_is_exactly_the_target_outside_the_mask(footage):
    """Before encoding, with the frame generator: every pixel the compositing mask leaves alone is the
    target frame's own (ping-pong order past its end), and the lower face is painted."""
    models, paths = footage.models, footage.paths
    assert models.cgan_artifact.condition == "frame"
    target = list(iter_frames(paths.videos / f"{footage.target}.mp4", FPS))
    rows = read_target_rows(paths.shards, footage.target)
    frames = len(target) + 20
    stats = models.cgan_artifact.lips_stats[footage.target]
    lips = np.random.default_rng(0).multivariate_normal(stats.mean, stats.cov, frames).astype(np.float32)
    layout = Layout(footage.resolve(), footage.params, "full", None)
    stream = layout.frames(lips, np.hstack([lips, np.zeros((frames, 1), np.float32)]))
    changed = []
    for start, batch in stream.batches:
        for k, out in enumerate(batch):
            shown = pingpong(start + k, len(target))
            outside = outside_masks(rows, shown, out.shape)
            np.testing.assert_array_equal(out[outside], target[shown][outside])
            changed.append(np.abs(out[~outside].astype(int) - target[shown][~outside]).mean())
    assert start + len(batch) == frames
    assert np.median(changed) > 1


def test_speech_longer_than_the_target_plays_it_forward_and_back(footage, tmp_path):
    # lossless: the footage's head barely moves, so a lossy encoder's noise could pass a frame two away
    # for the one shown
    params = footage.params.model_copy(update={"render": footage.params.render.model_copy(update={"crf": 0})})
    result = render(write_voice(tmp_path / "long.wav", 5.0), tmp_path / "long.mp4", footage.resolve(params),
                    params)
    frames = round(5.0 * FPS)
    assert result.frames == frames and video_info(tmp_path / "long.mp4")[2] == pytest.approx(
        5.0, abs=1.5 / FPS
    )
    target = list(iter_frames(footage.paths.videos / f"{footage.target}.mp4", FPS))
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
    from models.rendering import target as target_module

    monkeypatch.setattr(target_module, "SEGMENT_BYTES", 512 * 512 * 3 * 7)  # 7-frame segments backwards
    path = footage.paths.videos / f"{footage.target}.mp4"
    forward = list(iter_frames(path, FPS))
    stream = TargetFrames(path, FPS, len(forward))
    for i, (index, frame) in enumerate(stream(3 * len(forward))):
        assert index == pingpong(i, len(forward))
        np.testing.assert_array_equal(frame, forward[index])


def test_dvc_stage_renders_the_full_frame_and_the_panel(footage, tmp_path, capsys):
    paths = footage.paths
    render_module.main(
        [
            "--params",
            str(paths.params),
            "--shards",
            str(paths.shards),
            "--videos",
            str(paths.videos),
            "--lstm",
            str(paths.lstm),
            "--cgan",
            str(paths.cgan),
            "--root",  # the renders go to <root>/renders
            str(tmp_path),
        ]
    )
    renders = tmp_path / "renders"
    assert sorted(p.name for p in renders.iterdir()) == ["demo.mp4", "demo_panel.mp4"]
    assert capsys.readouterr().out.count("render: ") == 2
    assert video_info(renders / "demo.mp4")[:2] == (512, 512)
    tile = 2 * footage.params.render.size  # the target's 512 px frames scaled to 2 faces' height
    assert video_info(renders / "demo_panel.mp4")[:2] == (2 * tile, tile + tile // 4)
    # the panel's left half is the target's own frame, the one of that moment (ping-pong order)
    target = [cv2.resize(frame, (tile, tile), interpolation=cv2.INTER_AREA)[LABEL:]
              for frame in iter_frames(paths.videos / f"{footage.target}.mp4", FPS)]
    for index, frame in enumerate(iter_frames(renders / "demo_panel.mp4", FPS)):
        left, composite = frame[LABEL:tile, :tile], frame[LABEL:tile, tile:]
        shown = pingpong(index, len(target))
        assert psnr(left, target[shown]) > max(SAME_FRAME_PSNR, psnr(composite, target[shown])), index
        # no other frame fits better, but for a neighbour: the footage barely moves from frame to frame
        best = int(np.argmin([np.abs(left.astype(int) - other).mean() for other in target]))
        assert abs(best - shown) <= 2, index


def test_unknown_target_is_a_render_error_naming_it(footage, tmp_path):
    with pytest.raises(RenderError, match="nobody"):
        render(
            write_voice(tmp_path / "s.wav", 0.5),
            tmp_path / "x.mp4",
            footage.resolve(footage.params, "nobody"),
            footage.params)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_renders_full_frame_onto_a_chosen_target(footage, tmp_path):
    other = next(p.stem for p in sorted(footage.paths.videos.glob("*.mp4")) if p.stem != footage.target)
    write_voice(tmp_path / "s.wav", 1.0)
    chosen = ["--target", other, "--root", str(footage.paths.root)]
    done = reenact("render", "--audio", "s.wav", "--out", "talk.mp4", *chosen, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"on {other} (full)" in done.stdout
    assert video_info(tmp_path / "talk.mp4")[:2] == (512, 512)


def test_a_target_of_odd_size_gives_an_even_video_of_its_frames(footage, tmp_path):
    """641x361 footage (H.264 needs even sides): the mp4 is 640x360, the frame's last column and row gone."""
    odd = Paths.at(tmp_path)  # a project of its own: one odd-sized target
    odd.videos.mkdir(parents=True)
    source = footage.paths.videos / f"{footage.target}.mp4"
    padded = ["-vf", "scale=361:361,pad=641:361:140:0", "-c:v", "libx264", "-pix_fmt", "yuv444p"]
    ffmpeg("-i", str(source), *padded, "-crf", "12", "-c:a", "copy", str(odd.videos / "odd.mp4"))
    assert process_video(odd.videos / "odd.mp4", odd.shards, footage.params.preprocess)["status"] == "ok"
    result = render(
        write_voice(tmp_path / "s.wav", 1.0),
        tmp_path / "odd.mp4",
        footage.resolve(footage.params, "odd", paths=odd),
        footage.params)
    assert video_info(tmp_path / "odd.mp4")[:2] == (640, 360)
    target = list(iter_frames(odd.videos / "odd.mp4", FPS))
    first = next(iter_frames(tmp_path / "odd.mp4", FPS))
    assert psnr(first[:, :120], target[0][:360, :120]) > 35  # the background left of the face, untouched
    assert result.frames == 30
