"""The mouth metrics (models/evaluation/mouth_metrics.py) and the baselines (models/evaluation/baselines.py)
on a real photo that talks: scikit-image's astronaut with her mouth opened by the demo corpus' warp
(tasks/demo/warp.py), her head drifting, each frame aligned by the project's own tracker. A smear must
score worse than a real frame off by a pixel; the real video flickers 1.0, a noisy one more; a mouth with its
teeth painted out scores low on teeth, and a classifier tells a blurred mouth from the real one
(models/evaluation/detectability.py) but not the real one from itself."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from models.artifacts import CganArtifact
from models.evaluation.baselines import (
    FaceRows,
    composite_crops,
    mean_baseline,
    mean_face,
    nearest_baseline,
    nearest_faces,
    nearest_lips,
    paint_frames,
    split_in_time,
)
from models.evaluation.detectability import (
    CONTROL_SHARPNESS,
    GAP,
    block_folds,
    detectability,
    detectability_scores,
    lower_face_features,
    matched_blur,
    neighbours,
    resampled,
)
from models.evaluation.detectability import (
    blurred as soft,
)
from models.evaluation.mouth_metrics import (
    INNER_LIPS,
    bright_in_mouth,
    dlib_floor_px,
    flicker,
    full_lmd_px,
    mouth_open,
    mouth_psnr,
    mouth_scores,
    mouth_ssim,
    redetected_lips,
    sharpness,
    teeth,
)
from models.networks.unet import UNetGenerator
from models.records import References
from tasks.config.params import PreprocessParams
from tasks.demo.warp import face_rig, render
from tasks.rows.align import FaceTracker

FRAME = 256  # the rig's frame side: the face is about 100 px wide
OPENINGS = [0.0, 0.2, 0.5, 0.8, 1.0, 0.6, 0.3, 0.1, 0.0, 0.4, 0.9, 0.5]
PARAMS = PreprocessParams()


def talking(openings: list[float]) -> tuple[list[np.ndarray], FaceRows]:
    """(full frames, their rows) of the astronaut talking with these openings, her head drifting."""
    rig, tracker = face_rig(FRAME), FaceTracker(PARAMS)
    frames = [render(rig, opening, 0.0, (0.4 * (i % 12), 0.5 * (i % 12), 0.2 * (i % 12)))
              for i, opening in enumerate(openings)]
    aligned = [tracker(frame) for frame in frames]
    assert all(a.face_found for a in aligned)
    rows = FaceRows(np.arange(len(frames)), np.stack([a.face for a in aligned]),
                    np.stack([a.landmarks for a in aligned]), np.stack([a.lips for a in aligned]),
                    np.stack([a.crop for a in aligned]))
    return frames, rows


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], FaceRows]:
    """(full frames, their rows) of a 12-frame talking astronaut."""
    return talking(OPENINGS)


@pytest.fixture(scope="module")
def longer_clip() -> FaceRows:
    """The rows of 36 frames of her talking: enough to train a classifier on some and test it on others."""
    return talking(OPENINGS * 3)[1]


def blurred(faces: np.ndarray, masks: np.ndarray, sigma: float) -> np.ndarray:
    """The faces smeared: Gaussian-blurred inside their masks."""
    return np.stack([np.where(mask[..., None] >= 0.5, cv2.GaussianBlur(face, (0, 0), sigma), face)
                     for face, mask in zip(faces, masks)])


def shifted(face: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return cv2.warpAffine(face, np.float32([[1, 0, dx], [0, 1, dy]]), face.shape[1::-1],
                          borderMode=cv2.BORDER_REPLICATE)


def test_identical_frames_score_the_top_and_one_and_only_the_mask_counts(clip):
    _, rows = clip
    face, mask = rows.faces[3], rows.measured_masks()[3]
    top = 20 * np.log10(255)  # one grey level of error: as exact as 8 bits say
    assert mouth_psnr(face, face, mask) == pytest.approx(top)
    off_by_one = np.clip(face.astype(int) + 1, 0, 255).astype(np.uint8)
    assert mouth_psnr(off_by_one, face, mask) == pytest.approx(top, abs=0.1)
    assert mouth_ssim(face, face, mask) == pytest.approx(1.0, abs=1e-9)
    elsewhere = face.copy()
    elsewhere[:20] = 255 - elsewhere[:20]  # the forehead: outside the mask and the SSIM window's reach
    assert mouth_psnr(elsewhere, face, mask) == pytest.approx(top)
    assert mouth_ssim(elsewhere, face, mask) == pytest.approx(1.0, abs=1e-9)
    dimmer = face // 2
    assert mouth_psnr(dimmer, face, mask) < 20 and mouth_ssim(dimmer, face, mask) < 0.9


def test_a_smeared_mouth_scores_clearly_worse_than_the_real_frame_a_pixel_off(clip):
    _, rows = clip
    masks = rows.measured_masks()
    smear = mouth_scores(blurred(rows.faces, masks, 3.0), rows.faces, masks)
    off_by_one = mouth_scores(np.stack([shifted(face, 1, 0) for face in rows.faces]), rows.faces, masks)
    assert smear["mouth_psnr"] < off_by_one["mouth_psnr"] - 2.0
    assert smear["mouth_ssim"] < off_by_one["mouth_ssim"] - 0.1
    slight = mouth_scores(blurred(rows.faces, masks, 1.0), rows.faces, masks)
    assert slight["mouth_psnr"] > smear["mouth_psnr"] and slight["mouth_ssim"] > smear["mouth_ssim"]


def test_a_smear_is_less_sharp_than_the_real_mouth_and_noise_sharper(clip):
    _, rows = clip
    masks, faces = rows.measured_masks(), rows.faces
    assert sharpness(faces, masks, faces) == 1.0
    assert sharpness(blurred(faces, masks, 3.0), masks, faces) < 0.6
    assert 0.6 < sharpness(blurred(faces, masks, 1.0), masks, faces) < 0.9
    noisy = np.clip(faces + np.random.default_rng(0).normal(0, 12, faces.shape), 0, 255).astype(np.uint8)
    assert sharpness(noisy, masks, faces) > 1.05


def test_the_real_video_flickers_one_a_noisy_one_more_a_frozen_one_none(clip):
    _, rows = clip
    masks, faces = rows.measured_masks(), rows.faces
    assert flicker(faces, masks, faces) == 1.0
    noise = np.random.default_rng(0).normal(0, 1, faces.shape)
    light, heavy = (flicker(np.clip(faces + sigma * noise, 0, 255).astype(np.uint8), masks, faces)
                    for sigma in (6, 12))
    assert 1.1 < light < heavy
    assert flicker(np.repeat(faces[:1], len(faces), 0), masks, faces) == 0.0
    assert np.isnan(flicker(faces[:1], masks[:1], faces[:1]))


def test_dlib_finds_the_real_lips_within_its_floor_and_misses_shifted_ones(clip):
    frames, rows = clip
    size = rows.size
    floor = dlib_floor_px(frames, rows.crops, rows.lips, PARAMS.lip_indices, size)
    assert 0 <= floor < 1.5
    found = redetected_lips(frames, rows.crops, PARAMS.lip_indices, size)
    off = rows.lips.copy()
    off[:, 0::2] += 4 / size  # 4 crop pixels to the right
    assert full_lmd_px(found, off, size) > floor + 2.5
    nothing = redetected_lips([np.zeros_like(frames[0])], rows.crops[:1], PARAMS.lip_indices, size)
    assert np.isnan(nothing).all() and np.isnan(full_lmd_px(nothing, rows.lips[:1], size))


def test_compositing_a_crop_into_itself_is_the_crop(clip):
    _, rows = clip
    assert np.array_equal(composite_crops(rows.faces, rows), rows.faces)


def test_the_split_never_gives_a_held_out_frame_to_training(clip):
    _, rows = clip
    train, held = split_in_time(rows.take(np.arange(1, 12)), 12, 0.75)  # frame 0 without a face
    assert list(train.frames) == list(range(1, 9)) and list(held.frames) == [9, 10, 11]
    train, held = split_in_time(rows, 10, 0.75)  # the cut inside frame 7: neither side gets it
    assert list(train.frames) == list(range(7)) and held.frames[0] == 8


def test_nearest_lips_retrieves_the_same_mouth_and_beats_the_mean_face(clip):
    _, rows = clip
    train, held = rows.take(np.arange(8)), rows.take(np.arange(8, 12))
    picked = nearest_lips(held.lips, train.lips)
    assert np.abs(np.take(OPENINGS, picked) - OPENINGS[8:]).max() <= 0.1 + 1e-9  # the nearest opening
    masks = held.measured_masks()
    nearest = mouth_scores(nearest_baseline(train, held), held.faces, masks)
    mean = mouth_scores(mean_baseline(train, held), held.faces, masks)
    assert nearest["mouth_psnr"] > mean["mouth_psnr"] + 1 and nearest["mouth_ssim"] > mean["mouth_ssim"]
    one = rows.take(np.arange(1))
    assert np.array_equal(mean_face(one), one.faces[0])
    assert mouth_psnr(mean_baseline(one, one)[0], one.faces[0], masks[0]) == pytest.approx(20 * np.log10(255))


def frame_artifact(generator: UNetGenerator, train: FaceRows) -> CganArtifact:
    """An artifact of `generator` adapted to the astronaut, its reference bank every training crop."""
    lips = train.lips
    return CganArtifact(state_dict=generator.state_dict(), hparams=UNetGenerator.hparams(128, 8), epoch=1,
                        lip_indices=PARAMS.lip_indices, fps=PARAMS.fps, split_by="time", val_videos=[],
                        params={}, params_digest="", data_fingerprint="", condition="frame", noise=None,
                        lips_mean=lips.mean(0), lips_std=lips.std(0) + 1e-6, lips_stats={},
                        target_video="astronaut", face_size=128,
                        references={"astronaut": References(train.faces, train.lips, train.frames)})


def test_the_frame_generator_paints_the_held_out_crop_around_its_nearest_lips_reference(clip):
    _, rows = clip
    train, held = rows.take(np.arange(8)), rows.take(np.arange(8, 12))
    torch.manual_seed(0)
    untrained = UNetGenerator(128, base=8).eval()  # residual: it paints its reference until trained
    painted = paint_frames(untrained, frame_artifact(untrained, train), held)
    assert painted.shape == held.faces.shape and painted.dtype == np.uint8
    assert np.abs(painted.astype(int) - nearest_faces(train, held)).max() <= 1
    with torch.no_grad():
        untrained.head.bias.fill_(0.5)  # a generator that brightens what it paints, and only that
    brighter = paint_frames(untrained, frame_artifact(untrained, train), held)
    hard = held.hard_masks() > 0
    assert np.abs(brighter.astype(int) - painted)[~hard].max() <= 1
    assert (brighter.astype(int) - painted)[hard].mean() > 40


def without_teeth(rows: FaceRows) -> np.ndarray:
    """The crops with the inside of the lips filled with the darkest colour there: no teeth."""
    faces = rows.faces.copy()
    for face, points in zip(faces, rows.landmarks):
        hole = np.zeros(face.shape[:2], np.uint8)
        cv2.fillPoly(hole, [np.round(points[INNER_LIPS]).astype(np.int32)], 1)
        if hole.any():
            face[hole > 0] = face[hole > 0].min(0)
    return faces


def test_teeth_sees_a_mouth_painted_without_them_and_forgives_a_darker_face(longer_clip):
    rows = longer_clip
    masks, faces = rows.measured_masks(), rows.faces
    is_open = mouth_open(rows.landmarks)
    assert is_open.sum() >= 12 and not is_open.all()  # the closed ones do not count
    assert sum(bright_in_mouth(f, p, m)[0] for f, p, m in zip(faces[is_open], rows.landmarks[is_open],
                                                               masks[is_open])) > 100  # she shows teeth
    assert teeth(faces, masks, faces, rows.landmarks) == 1.0
    assert teeth(without_teeth(rows), masks, faces, rows.landmarks) < 0.2
    darker = (faces * 0.8).astype(np.uint8)  # the whole face a shade darker: bright against its own skin
    assert 0.9 < teeth(darker, masks, faces, rows.landmarks) < 1.1
    assert teeth(soft(faces, masks, 3.0), masks, faces, rows.landmarks) < 0.9  # a smear pales them
    closed = ~is_open
    assert np.isnan(teeth(faces[closed], masks[closed], faces[closed], rows.landmarks[closed]))


def test_the_neighbour_control_is_each_frame_with_the_lower_face_of_one_two_places_away():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    masks = np.zeros((6, 16, 16), np.float32)
    masks[:, 8:, 4:12] = 1.0
    masks[:, 7, 4:12] = 0.5
    mixed = neighbours(images, masks, 2)
    assert np.array_equal(mixed[:, :7], images[:, :7])  # outside the mask: the frame itself
    assert np.array_equal(mixed[:, 8:, 4:12], images[[2, 3, 4, 5, 2, 3]][:, 8:, 4:12])  # the last: earlier
    half = (images[:, 7, 4:12].astype(np.float32) + images[[2, 3, 4, 5, 2, 3]][:, 7, 4:12]) / 2
    assert np.abs(mixed[:, 7, 4:12] - half).max() <= 0.5
    with pytest.raises(ValueError, match="more than 2 needed"):
        neighbours(images[:2], masks[:2], 2)


def test_detect_parts_cuts_the_test_apart_by_kind_and_place(longer_clip, tmp_path, capsys):
    """evals.detect_parts on what evals.realface --keep-arrays writes: a smear is caught by its edges, not
    by its colour; every feature is in `all` once; a method not in the arrays is one line."""
    from evals import detect_parts

    rows = longer_clip
    masks = rows.measured_masks()
    arrays = tmp_path / "clip.npz"
    np.savez_compressed(arrays, real=rows.faces, masks=masks, frames=rows.frames,
                        ours=soft(rows.faces, masks, 2.0))
    found = {row["part"]: row for row in detect_parts.main([str(arrays)])}
    assert found["all"]["ours"] >= 0.9 and found["edges"]["ours"] >= 0.9
    assert found["colour"]["ours"] < found["edges"]["ours"]
    assert {"neighbour_1", "neighbour_2", "neighbour_4", "jpeg_90"} <= set(found["all"])
    parts = detect_parts.columns()
    width = len(lower_face_features(rows.faces[0], masks[0]))
    assert sorted(parts["all"]) == list(range(width))
    assert sorted(parts["cells_top"] + parts["cells_middle"] + parts["cells_bottom"]
                  + parts["colour"] + parts["colour_spread"]) == list(range(width))
    assert len(capsys.readouterr().out.splitlines()) == len(parts)
    with pytest.raises(SystemExit, match="no composites of 'noise'.*there are: ours"):
        detect_parts.main([str(arrays), "--method", "noise"])


def test_the_resampled_control_is_the_real_lower_face_at_the_painted_side_and_is_caught(longer_clip):
    rows = longer_clip
    masks, faces = rows.measured_masks(), rows.faces
    side = faces.shape[1]
    assert np.array_equal(resampled(faces, masks, side), faces)  # painted at the side it is measured at
    half = resampled(faces, masks, side // 2)
    outside = masks <= 0
    assert np.array_equal(half[outside], faces[outside])  # the frame's own pixels beyond the mask
    assert np.abs(half.astype(int) - faces).mean() < 2  # the same face, its finest detail gone
    assert sharpness(half, masks, faces) < 0.97  # softer than a painting may be (sharpness 0.97)
    assert detectability(faces, half, masks, rows.frames) >= 0.8


def test_block_folds_test_every_frame_once_and_never_train_on_a_test_frames_neighbour():
    frames = np.array([*range(10), *range(12, 40)])  # frames 10 and 11 without a face
    splits = block_folds(frames)
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(len(frames)))
    for train, test in splits:
        assert np.diff(test).max() == 1 and len(train) > 0
        distance = np.abs(frames[train][:, None] - frames[test][None]).min()
        assert distance > GAP


def test_a_classifier_cannot_tell_the_real_mouth_from_itself_and_tells_a_blurred_one(longer_clip):
    rows = longer_clip
    masks, faces = rows.measured_masks(), rows.faces
    assert detectability(faces, faces, masks, rows.frames) == 0.5  # each frame's two crops: one right
    smear = soft(faces, masks, 2.0)
    assert sharpness(smear, masks, faces) < 0.8
    assert detectability(faces, smear, masks, rows.frames) >= 0.9
    target = sharpness(soft(faces, masks, 1.5), masks, faces)
    assert matched_blur(faces, masks, target) == pytest.approx(1.5, abs=0.05)
    assert matched_blur(faces, masks, 1.02) == 0.0  # sharper than the real frames: no blur to match
    scores = detectability_scores(faces, smear, masks, rows.frames)
    assert scores["blur_sigma"] == pytest.approx(2.0, abs=0.05) and scores["detectability_blurred"] >= 0.9
    # ours as sharp as the real frames: the control is still a blur a viewer sees, CONTROL_SHARPNESS soft
    sigma = detectability_scores(faces, faces, masks, rows.frames)["blur_sigma"]
    assert sigma > 0
    assert sharpness(soft(faces, masks, sigma), masks, faces) == pytest.approx(CONTROL_SHARPNESS, abs=0.01)
    with pytest.raises(ValueError, match="at least 20 needed"):
        detectability(faces[:8], faces[:8], masks[:8], rows.frames[:8])
    with pytest.raises(ValueError, match="36 real, 35 painted"):
        detectability(faces, faces[1:], masks, rows.frames)
