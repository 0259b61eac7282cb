"""models.evaluation.evaluate end to end on tiny models trained on a synthetic corpus (tests/render_kit.py's
`kit`),
and the metric functions on inputs whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile

from models.common import finite_or_none
from models.evaluation import evaluate
from models.evaluation.metrics import (
    beats_baselines,
    image_metrics,
    lstm_metrics,
    sync_metric,
)
from models.rendering import render
from models.rendering.speech import speech_lips
from models.training.data import load_corpus
from models.training.lip_metrics import redetected_lmd
from models.training.split import split_corpus

PINNED_KEYS = {"lstm/val_loss", "lmd_px", "mouth_open_r", "gen_ssim", "gen_psnr", "gen_lmd_px", "sync_r"}
COMPOSITE_KEYS = {"full_lmd_px", "seam", "outside_psnr"}
LIP_INDICES = [48, 50, 52, 54, 56, 58, 62, 66]


# Fewer frames and seconds than the project's evaluation: the same code, on a tiny corpus.
QUICK = ["--override", "evaluate.max_frames=24", "--override", "evaluate.sync_seconds=2.0"]


def run(kit, out, videos) -> dict:
    evaluate.main(
        [
            "--params",
            str(kit.paths.params),
            "--shards",
            str(kit.paths.shards),
            "--lstm",
            str(kit.paths.lstm),
            "--cgan",
            str(kit.paths.cgan),
            "--videos",
            str(videos),
            "--root",  # the reports go to <root>/reports
            str(out.parent),
            *QUICK,
        ]
    )
    return json.loads((out / "metrics.json").read_text())


def test_metrics_json_has_every_design_metric_and_baseline(kit, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REENACT_PROGRESS_SECONDS", "0.05")  # its progress lines every 0.05 s, not 15
    videos = tmp_path / "videos"
    videos.mkdir()
    # Speech for the held-out video: synthetic shards carry features, not audio, so any sound does.
    val_video = split_corpus(load_corpus(kit.paths.shards), kit.params).val_videos()[0]
    t = np.arange(4 * 16000) / 16000
    soundfile.write(videos / f"{val_video}.wav", 0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.25), 16000)
    metrics = run(kit, tmp_path / "reports", videos)

    assert PINNED_KEYS <= metrics.keys()
    for baseline in ("baseline_mean", "baseline_random"):
        assert {f"{baseline}/{k}" for k in PINNED_KEYS - {"gen_lmd_px"}} <= metrics.keys()
    # the compositing metrics and their pasted-box baseline: null here, synthetic shards have no footage
    for key in COMPOSITE_KEYS:
        assert metrics[key] is None and metrics[f"baseline_paste/{key}"] is None
    for key in (
        "lstm/val_loss",
        "lmd_px",
        "gen_ssim",
        "gen_psnr",
        "mean_face/gen_ssim",
        "baseline_mean/lstm/val_loss",
        "baseline_random/lmd_px",
        "baseline_mean/gen_ssim",
        "baseline_random/gen_psnr",
    ):
        assert math.isfinite(metrics[key]), key
    # the number training logged for its best epoch: same split, same stats (not to the last digit:
    # the synthetic lips have constant coordinates, z-scored with a std of 1e-6, and the round trip
    # to lips in [0, 1] costs float32 precision there; on the demo corpus they agree to 1e-6)
    logged = json.loads((kit.paths.live_dir("lstm") / "metrics.json").read_text())
    assert metrics["lstm/val_loss"] == pytest.approx(logged["best_val_loss"], rel=1e-2)
    assert metrics["baseline_mean/lstm/val_loss"] == pytest.approx(logged["baseline_val_loss"], rel=1e-2)
    assert metrics["baseline_mean/mouth_open_r"] is None, "a constant has no correlation"
    assert metrics["sync_video"] == val_video
    assert 0.0 <= metrics["gen_face_found"] <= 1.0
    # the frame generator paints each validation frame's own crop (its lower face only): far nearer the
    # real frame than the mean training face, which knows nothing of the frame
    assert kit.models.cgan_artifact.condition == "frame"
    assert metrics["gen_psnr"] > metrics["mean_face/gen_psnr"] + 6
    # the held-out quarter of the validation video, painted from a bank of its first three quarters
    assert metrics["mouth_video"] == val_video
    for key in ("mouth_psnr", "mouth_ssim", "baseline_nearest/mouth_psnr", "baseline_mean/mouth_ssim"):
        assert math.isfinite(metrics[key]), key
    assert 15 < metrics["mouth_psnr"] < 60 and 0 < metrics["mouth_ssim"] <= 1 and metrics["flicker"] > 0

    reports = tmp_path / "reports"
    assert {"metrics.json", "eval_grid.png", "mouth_opening.csv", "mouth_opening.png"} <= {
        p.name for p in reports.iterdir()
    }
    rows = (reports / "mouth_opening.csv").read_text().splitlines()
    assert rows[0] == "frame,true,predicted,generated" and len(rows) == 1 + 60
    said = capsys.readouterr().out
    assert "beats_baselines:" in said and "evaluate: parts " in said and "/5 parts" in said


def test_sync_lips_take_the_path_render_takes(kit, tmp_path):
    """evaluate puts the model's and the yardsticks' lips through render.clip_lips; it must equal render()."""
    params = kit.params
    t = np.arange(16000 * 3 // 2) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    soundfile.write(tmp_path / "speech.wav", speech, 16000, subtype="FLOAT")
    models = kit.models
    render.render(
        tmp_path / "speech.wav",
        tmp_path / "speech.mp4",
        kit.resolve(params),
        params,
        render.RenderOptions(output="face", lips_out=tmp_path / "lips.npy"))
    pp = params.preprocess
    raw = speech_lips(models, speech, pp.sample_rate, pp.fps, pp)
    np.testing.assert_allclose(
        render.clip_lips(kit.resolve(params), params, raw), np.load(tmp_path / "lips.npy"), atol=1e-4
    )


def test_sync_r_is_null_without_speech(kit, tmp_path, capsys):
    metrics = run(kit, tmp_path / "reports", tmp_path / "no-videos")
    assert metrics["sync_r"] is None and metrics["sync_video"] is None
    assert metrics["baseline_random/sync_r"] is None
    assert math.isfinite(metrics["gen_ssim"])
    assert not (tmp_path / "reports" / "mouth_opening.csv").exists()
    assert "sync_r is null" in capsys.readouterr().out


def lips(frames: int, seed: int = 0) -> np.ndarray:
    """Lips that jitter a little, with an inner gap (points 62 and 66, the last two) that varies more."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [0.35, 0.72, 0.44, 0.69, 0.56, 0.69, 0.65, 0.72, 0.56, 0.76, 0.44, 0.76, 0.5, 0.71, 0.5, 0.73],
        np.float32,
    )
    jittered = base + rng.normal(0, 0.005, (frames, 16)).astype(np.float32)
    jittered[:, 15] += rng.uniform(0, 0.1, frames).astype(np.float32)
    return jittered


def test_perfect_prediction_scores_zero_distance_and_r_one():
    true = lips(50)
    metrics = lstm_metrics(true.copy(), true, np.full(16, 0.05, np.float32), 128, LIP_INDICES)
    assert metrics["lstm/val_loss"] == 0 and metrics["lmd_px"] == 0
    assert metrics["mouth_open_r"] == pytest.approx(1.0)
    assert sync_metric(true.copy(), true, 128, LIP_INDICES) == pytest.approx(1.0)


def test_constant_prediction_has_no_r_and_the_mean_distance():
    true = lips(50)
    mean = np.broadcast_to(true.mean(0), true.shape)
    metrics = lstm_metrics(mean, true, true.std(0) + 1e-6, 128, LIP_INDICES)
    assert math.isnan(metrics["mouth_open_r"]) and finite_or_none(metrics["mouth_open_r"]) is None
    # z-scored with the true std, predicting the mean costs 1 per coordinate (up to the epsilon)
    assert metrics["lstm/val_loss"] == pytest.approx(1.0, rel=1e-3)
    assert metrics["lmd_px"] > 0
    assert math.isnan(sync_metric(mean.copy(), true, 128, LIP_INDICES))


def test_redetected_lmd_counts_only_frames_with_a_face():
    asked = lips(4)
    found = asked.copy()
    found[0] += 1 / 128  # one frame off by a pixel in x and y
    found[1] = np.nan
    px, share = redetected_lmd(found, asked, 128)
    assert px == pytest.approx(math.sqrt(2) / 3, rel=1e-4) and share == 0.75
    px, share = redetected_lmd(np.full_like(asked, np.nan), asked, 128)
    assert math.isnan(px) and share == 0.0


def test_image_metrics_rank_a_close_image_above_a_far_one():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    close = np.clip(real.astype(int) + rng.integers(-3, 4, real.shape), 0, 255).astype(np.uint8)
    far = np.full_like(real, 128)
    near, away = image_metrics(close, real), image_metrics(far, real)
    assert near["gen_ssim"] > 0.9 > away["gen_ssim"]
    assert near["gen_psnr"] > 35 > away["gen_psnr"]


def test_beats_baselines_knows_which_way_is_better():
    metrics = {
        "lmd_px": 1.0,
        "baseline_mean/lmd_px": 2.0,
        "baseline_random/lmd_px": 0.5,
        "mouth_open_r": 0.4,
        "baseline_mean/mouth_open_r": None,
        "baseline_random/mouth_open_r": 0.6,
        "sync_r": None,
        "baseline_random/sync_r": -0.1,
    }
    assert beats_baselines(metrics, evaluate.BASELINES) == {
        "baseline_mean/lmd_px": True,
        "baseline_random/lmd_px": False,
        "baseline_mean/mouth_open_r": True,
        "baseline_random/mouth_open_r": False,
        "baseline_random/sync_r": False,
    }
