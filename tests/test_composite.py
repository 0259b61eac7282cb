"""Compositing and the lip guard, on arrays: the inverse warp, the mask, colour matching, frames without a
face, the seam metric against a pasted box, ping-pong timing and the out-of-distribution bound."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.evaluation.composite_metrics import boundary, outside_error, seam_gradients
from models.networks.mask import (
    EDGE,
    FEATHER,
    JAW_MARGIN,
    MEASURED_SIDE_MARGIN,
    SIDE_MARGIN,
    lower_face_mask,
    lower_face_polygon,
)
from models.rendering.composite import (
    DETAIL_SIGMA,
    _region,
    blend,
    blend_bands,
    composite,
    hard_paste,
    match_colour,
    warp_back,
)
from models.rendering.target import pingpong
from models.training.lips import bound_lips, lips_distance, lips_moments

SIZE = 128
# dlib's 68 points of a frontal face in [0, 1] of an aligned crop (the mean of the demo corpus' rows).
MEAN_FACE = (
    np.array(
        [
            [0.19, 0.33],
            [0.20, 0.42],
            [0.21, 0.51],
            [0.23, 0.60],
            [0.27, 0.68],
            [0.32, 0.75],
            [0.38, 0.80],
            [0.44, 0.83],
            [0.50, 0.84],
            [0.56, 0.83],
            [0.62, 0.80],
            [0.68, 0.75],
            [0.73, 0.68],
            [0.77, 0.60],
            [0.79, 0.51],
            [0.80, 0.42],
            [0.81, 0.33],
            [0.25, 0.26],
            [0.29, 0.23],
            [0.34, 0.23],
            [0.39, 0.24],
            [0.43, 0.26],
            [0.57, 0.26],
            [0.61, 0.24],
            [0.66, 0.23],
            [0.71, 0.23],
            [0.75, 0.26],
            [0.50, 0.31],
            [0.50, 0.36],
            [0.50, 0.41],
            [0.50, 0.46],
            [0.45, 0.50],
            [0.47, 0.51],
            [0.50, 0.52],
            [0.53, 0.51],
            [0.55, 0.50],
            [0.30, 0.30],
            [0.33, 0.29],
            [0.37, 0.29],
            [0.40, 0.31],
            [0.37, 0.31],
            [0.33, 0.31],
            [0.60, 0.31],
            [0.63, 0.29],
            [0.67, 0.29],
            [0.70, 0.30],
            [0.67, 0.31],
            [0.63, 0.31],
            [0.39, 0.62],
            [0.43, 0.60],
            [0.47, 0.59],
            [0.50, 0.60],
            [0.53, 0.59],
            [0.57, 0.60],
            [0.61, 0.62],
            [0.57, 0.66],
            [0.53, 0.68],
            [0.50, 0.68],
            [0.47, 0.68],
            [0.43, 0.66],
            [0.41, 0.62],
            [0.47, 0.62],
            [0.50, 0.62],
            [0.53, 0.62],
            [0.59, 0.62],
            [0.53, 0.63],
            [0.50, 0.64],
            [0.47, 0.63],
        ],
        np.float32,
    )
    * SIZE
)


def crop_transform(scale: float, angle: float, centre: tuple[float, float]) -> np.ndarray:
    """Source pixels -> crop pixels: a face `SIZE / scale` px wide centred at `centre`, turned by `angle`."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[c, -s], [s, c]])
    return np.hstack([linear, (np.array([SIZE / 2, SIZE / 2]) - linear @ np.array(centre))[:, None]])


def textured_frame(height: int = 360, width: int = 640, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(noise, 0, 255).astype(np.uint8)


def test_a_crop_warped_back_lands_on_the_landmarks_it_came_from():
    crop = crop_transform(0.55, 0.2, (300.0, 170.0))
    inverse = cv2.invertAffineTransform(crop)
    dots = np.zeros((SIZE, SIZE), np.float32)
    for x, y in MEAN_FACE[[8, 30, 36, 45, 48, 54]]:
        cv2.circle(dots, (round(x * 16), round(y * 16)), 3 * 16, 1.0, -1, cv2.LINE_AA, shift=4)
    frame = np.zeros((360, 640, 3), np.uint8)
    region = (0, 0, 640, 360)
    back = warp_back(dots, crop, region, cv2.INTER_LINEAR)
    count, labels = cv2.connectedComponents((back > 0.5).astype(np.uint8))
    found = np.array([np.argwhere(labels == k)[:, ::-1].mean(0) for k in range(1, count)])
    expected = MEAN_FACE[[8, 30, 36, 45, 48, 54]] @ inverse[:, :2].T + inverse[:, 2]
    assert len(found) == len(expected)
    distance = np.linalg.norm(found[:, None] - expected[None], axis=2).min(0)
    assert distance.max() < 1.0  # pixels of the frame
    assert frame.sum() == 0  # warp_back never writes into the frame


def test_the_mask_covers_the_lower_face_only():
    mask = lower_face_mask(MEAN_FACE, SIZE)
    assert mask.dtype == np.float32 and mask.min() >= 0 and mask.max() <= 1
    mouth, chin = MEAN_FACE[48:68].mean(0), MEAN_FACE[8]
    assert mask[int(mouth[1]), int(mouth[0])] > 0.99
    assert mask[int(chin[1]) - 3, int(chin[0])] > 0.9
    for eye in (MEAN_FACE[36:42].mean(0), MEAN_FACE[42:48].mean(0)):
        assert mask[int(eye[1]), int(eye[0])] == 0
    assert mask[int(MEAN_FACE[28, 1]), int(MEAN_FACE[28, 0])] < 0.01  # the nose bridge
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    # feathered: a band of partial values around the border, as wide as a share of the face
    partial = ((mask > 0.05) & (mask < 0.95)).sum(0)
    assert partial.max() > 8


def test_the_jaw_is_pushed_down_for_the_chin_and_hardly_sideways():
    """Below the mouth the mask reaches JAW_MARGIN of the face past the chin (a generated chin may drop
    there); beside it only SIDE_MARGIN past the cheek, so hair, earrings and background stay the frame's.
    The region the metrics measure is pushed JAW_MARGIN every way, and holds the painted one."""
    landmarks = MEAN_FACE  # crop pixels at SIZE
    painted, measured = (lower_face_polygon(landmarks, SIZE, s) for s in (SIDE_MARGIN, MEASURED_SIDE_MARGIN))
    chin, cheeks = 8 - 2, [0, 12]  # jaw points 8 (chin), 2 and 14 (beside the mouth) in the polygon
    for polygon in (painted, measured):
        assert polygon[chin, 1] - landmarks[8, 1] == pytest.approx(JAW_MARGIN * SIZE, rel=0.05)
    for at, point in zip(cheeks, (2, 14)):
        assert abs(painted[at, 0] - landmarks[point, 0]) < 1.5 * SIDE_MARGIN * SIZE
        assert abs(measured[at, 0] - landmarks[point, 0]) > 0.8 * JAW_MARGIN * SIZE
    soft, wide = lower_face_mask(landmarks, SIZE), lower_face_mask(landmarks, SIZE, MEASURED_SIDE_MARGIN)
    assert (soft <= wide + 1e-6).all() and soft.sum() < 0.95 * wide.sum()
    beside = (round(landmarks[2, 1]), round(landmarks[2, 0] - 0.03 * SIZE))  # hair beside the left cheek
    assert soft[beside] < 0.5 <= wide[beside]


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("shift", [(0, 0), (-50, 20), (30, 40)])  # whole; past the left; past the foot
def test_the_mask_is_made_over_its_box_as_over_the_whole_crop(size, shift):
    """lower_face_mask blurs the polygon's box and the kernel's reach alone: the whole crop's mask."""
    landmarks = MEAN_FACE / SIZE * size + np.array(shift, np.float32) * size / SIZE
    polygon = lower_face_polygon(landmarks, size)
    whole = np.zeros((size, size), np.float32)
    cv2.fillPoly(whole, [np.round(polygon * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    whole = cv2.GaussianBlur(whole, (0, 0), FEATHER * size, borderType=cv2.BORDER_CONSTANT)
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / EDGE, 0, 1).astype(np.float32)
    whole = np.clip(whole, 0, 1) * ramp[:, None] * ramp[None, :]
    mask = lower_face_mask(landmarks, size)
    assert mask.any()
    np.testing.assert_allclose(mask, whole, atol=1e-6)


@pytest.mark.parametrize("size", [128, 256])
def test_the_composite_works_on_the_masks_box_as_on_the_whole_crop(size):
    """In crop pixels the composite works on the mask's box (and what reaches it) alone: the frame it
    gives is the one the whole crop gives, to a unit of rounding."""
    scale = size / SIZE
    landmarks = MEAN_FACE * scale
    frame = textured_frame(seed=5)
    crop = crop_transform(0.5, 0.3, (320.0, 180.0))
    crop[:, :] *= scale  # source -> a crop of `size` px of the same face
    real = cv2.warpAffine(frame, crop, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    face = np.clip(real.astype(int) + np.random.default_rng(1).integers(-40, 40, real.shape), 0, 255)
    face = face.astype(np.uint8)
    out, _ = composite(frame, face, crop, landmarks)
    # the same, over the whole crop
    mask = lower_face_mask(landmarks, size)
    region = _region(crop, size, frame.shape, _support(mask))
    matched = match_colour(face, real, mask)
    coarse = cv2.GaussianBlur(matched.astype(np.float32) - real.astype(np.float32), (0, 0), DETAIL_SIGMA,
                              borderType=cv2.BORDER_REPLICATE)
    whole = blend_bands(frame, warp_back(matched, crop, region, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE),
                        warp_back(coarse, crop, region, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE),
                        warp_back(mask, crop, region, cv2.INTER_LINEAR), region)
    difference = np.abs(out.astype(int) - whole.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    assert (out != frame).sum() > 1000


def _support(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return columns[0], rows[0], columns[-1] + 1, rows[-1] + 1


def test_outside_the_mask_the_frame_is_untouched_and_inside_it_is_the_face():
    frame = textured_frame()
    crop = crop_transform(0.5, -0.1, (320.0, 180.0))
    face = np.full((SIZE, SIZE, 3), (200, 40, 40), np.uint8)
    out, alpha = composite(frame, face, crop, MEAN_FACE, with_alpha=True)
    assert out.shape == frame.shape and out.dtype == np.uint8
    untouched = alpha == 0
    assert 0.5 < untouched.mean() < 0.95  # a 256 px face in a 640x360 frame: its lower half replaced
    np.testing.assert_array_equal(out[untouched], frame[untouched])
    inside = alpha > 0.99
    assert inside.sum() > 1000
    # inside: the generated face (flat, shifted to the frame's colours), not the frame's texture
    assert out[inside].std(0).max() < 1.0
    assert frame[inside].std(0).min() > 3.0


def test_frames_without_a_face_pass_through():
    frame = textured_frame(seed=1)
    face = np.zeros((SIZE, SIZE, 3), np.uint8)
    crop = crop_transform(0.5, 0.0, (320.0, 180.0))
    out, alpha = composite(frame, face, crop, MEAN_FACE, face_found=False, with_alpha=True)
    assert out is frame and alpha is None
    out, alpha = composite(frame, face, crop, np.full((68, 2), np.nan, np.float32))
    assert out is frame and alpha is None
    out, alpha = hard_paste(frame, face, crop, face_found=False)
    assert out is frame and alpha is None
    off_frame = crop_transform(0.5, 0.0, (5000.0, 5000.0))
    assert composite(frame, face, off_frame, MEAN_FACE)[0] is frame


def test_colour_is_matched_in_the_fading_band():
    mask = lower_face_mask(MEAN_FACE, SIZE)
    real = textured_frame(SIZE, SIZE, seed=2)
    face = np.clip(real.astype(int) - (30, 10, -20), 0, 255).astype(np.uint8)
    matched = match_colour(face, real, mask)
    band = (mask > 0.05) & (mask < 0.95)
    np.testing.assert_allclose(matched[band].mean(0), real[band].mean(0), atol=1.5)


def test_the_composite_seam_beats_a_pasted_box():
    """A generated face a little off in brightness: the pasted box shows its edge, the mask does not."""
    frame = textured_frame(seed=3)
    crop = crop_transform(0.5, 0.05, (320.0, 180.0))
    real = cv2.warpAffine(frame, crop, (SIZE, SIZE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    face = np.clip(real.astype(int) + 25, 0, 255).astype(np.uint8)
    soft, alpha = composite(frame, face, crop, MEAN_FACE, with_alpha=True)
    hard, box = hard_paste(frame, face, crop)
    soft_sum, soft_source, _ = seam_gradients(soft, frame, alpha)
    hard_sum, hard_source, _ = seam_gradients(hard, frame, box)
    soft_seam, hard_seam = soft_sum / soft_source, hard_sum / hard_source
    assert hard_seam > 1.5 and abs(np.log(soft_seam)) < abs(np.log(hard_seam)) / 3
    assert boundary(alpha).sum() > 100
    error, values = outside_error(soft, frame, alpha)
    assert error == 0 and values > 0


def test_pingpong_plays_forward_then_back_without_repeats():
    order = [pingpong(i, 4) for i in range(12)]
    assert order == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    np.testing.assert_array_equal(pingpong(np.arange(12), 4), order)
    assert [pingpong(i, 1) for i in range(3)] == [0, 0, 0]
    steps = np.abs(np.diff(pingpong(np.arange(1000), 37)))
    assert (steps == 1).all()  # never frozen, never jumping


def test_lips_far_from_training_are_pulled_onto_the_bound():
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    train = 0.5 + rng.normal(size=(5000, 16)) @ (rotation * rng.uniform(0.005, 0.02, 16))
    stats = lips_moments(train)
    typical = train[:500].astype(np.float32)
    np.testing.assert_array_equal(bound_lips(typical, stats, 8.0), typical)
    shouting = stats.mean + 12 * (train[:20] - stats.mean)  # 12x the usual excursion
    assert lips_distance(shouting, stats).min() > 8
    pulled = bound_lips(shouting, stats, 8.0)
    np.testing.assert_allclose(lips_distance(pulled, stats), 8.0, rtol=1e-4)
    direction = (shouting - stats.mean) / np.linalg.norm(shouting - stats.mean, axis=1, keepdims=True)
    back = (pulled - stats.mean) / np.linalg.norm(pulled - stats.mean, axis=1, keepdims=True)
    np.testing.assert_allclose((direction * back).sum(1), 1.0, atol=1e-5)  # the same shape, smaller
    np.testing.assert_array_equal(bound_lips(shouting, stats, 0.0), shouting.astype(np.float32))


@pytest.mark.parametrize("side", [(641, 361), (1280, 720)])
def test_composite_keeps_the_frame_size(side):
    frame = textured_frame(side[1], side[0], seed=4)
    crop = crop_transform(128 / (side[1] * 0.4), 0.0, (side[0] / 2, side[1] / 2))
    out, _ = composite(frame, np.full((SIZE, SIZE, 3), 128, np.uint8), crop, MEAN_FACE)
    assert out.shape == frame.shape


def test_fine_detail_of_a_softer_face_stays_off_the_border():
    """A generator's face is softer than the frame: blended plainly its blur rings the mask's border
    (seam below 1); in two bands the frame keeps its own texture there."""
    frame = textured_frame(seed=5)
    crop = crop_transform(0.5, 0.0, (320.0, 180.0))
    real = cv2.warpAffine(frame, crop, (SIZE, SIZE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    soft_face = cv2.GaussianBlur(real, (0, 0), 2.0)
    banded, alpha = composite(frame, soft_face, crop, MEAN_FACE, with_alpha=True)
    region = (0, 0, frame.shape[1], frame.shape[0])
    warped = warp_back(soft_face, crop, region, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
    plain = blend(frame, warped, alpha, region)
    seams = []
    for image in (banded, plain):
        composite_sum, source_sum, _ = seam_gradients(image, frame, alpha)
        seams.append(composite_sum / source_sum)
    assert seams[1] < 0.9  # the plain blend's blurred ring
    assert abs(np.log(seams[0])) < abs(np.log(seams[1])) / 2


@pytest.mark.real_media
def test_the_encoder_alone_reads_as_a_blurred_border_against_the_raw_source(real_clip, tmp_path):
    """Why `seam` is measured against the source passed through the same encoder: untouched real frames,
    encoded and decoded, already lose gradient on any border, so against the raw source a composite
    would be charged for the encoder's softening."""
    from models.rendering.media import Encoder
    from tasks.config.params import RenderParams
    from tasks.rows.decode import iter_frames, probe

    frames = [frame for _, frame in zip(range(12), iter_frames(real_clip, 25.0))]
    height, width = frames[0].shape[:2]
    width -= width % 2  # H.264 in yuv420p: the encoder drops an odd last column
    frames = [np.ascontiguousarray(frame[:, :width]) for frame in frames]
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (width // 2, height // 2), (width // 5, height // 4), 0, 0, 360, 1.0, -1)
    out = tmp_path / "untouched.mp4"
    with Encoder(out, real_clip, len(frames) / 25, (width, height), 25.0, RenderParams()) as encoder:
        for frame in frames:
            encoder.write(frame)
    decoded = list(iter_frames(out, 25.0))
    assert len(decoded) == len(frames) and probe(out).width == width
    sums = np.array([seam_gradients(d, f, alpha)[:2] for d, f in zip(decoded, frames)]).sum(0)
    assert 0.9 < sums[0] / sums[1] < 0.99  # 0.969 on this clip
