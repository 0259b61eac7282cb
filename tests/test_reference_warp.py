"""A reference crop warped onto the painted frame's pose and the lips asked for
(models/networks/reference_warp.py), and where the frame generator is given it (models/networks/unet.py:
chosen_references)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_composite import MEAN_FACE

from models.networks.reference_warp import warp_reference
from models.networks.unet import chosen_references, pick_references
from models.records import References

LIP_INDICES = [48, 50, 52, 54, 56, 58, 62, 66]
SIDE = 128


def textured(seed: int = 0) -> np.ndarray:
    """A smooth random crop (so cubic sampling between pixels stays near the pixels' values)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (16, 16, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def lips_of(points: np.ndarray) -> np.ndarray:
    return (points[LIP_INDICES] / SIDE).reshape(-1).astype(np.float32)


def where_read(warped: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which reference pixel the warped crop shows at `point` (rounded), read off a crop that holds
    each pixel's own coordinates (`coordinates`)."""
    x, y = np.round(point).astype(int)
    return warped[y, x, :2].astype(np.float64) / 2


def coordinates() -> np.ndarray:
    """A crop whose red is twice each pixel's x and green twice its y."""
    ys, xs = np.mgrid[:SIDE, :SIDE]
    return np.stack([2 * xs, 2 * ys, np.zeros_like(xs)], -1).astype(np.uint8)


def test_a_reference_already_in_place_is_left_as_it_is():
    crop = textured()
    assert np.array_equal(warp_reference(crop, MEAN_FACE, MEAN_FACE, lips_of(MEAN_FACE), LIP_INDICES), crop)


def test_its_lips_go_where_the_lips_are_asked_and_its_nose_stays_on_the_frames():
    asked = MEAN_FACE.copy()
    asked[[48, 54], 0] += [-4.0, 4.0]  # the corners wider
    asked[[56, 58, 66], 1] += 6.0  # the lower lip dropped: an opened mouth
    warped = warp_reference(coordinates(), MEAN_FACE, MEAN_FACE, lips_of(asked), LIP_INDICES)
    for k in (48, 54, 66, 33):  # each shows the reference's own point there, to a pixel
        error = where_read(warped, asked[k]) - (MEAN_FACE[k] + np.round(asked[k]) - asked[k])
        assert np.abs(error).max() < 1.0, k


def test_a_frame_whose_face_sits_elsewhere_gets_the_reference_moved_there():
    moved = MEAN_FACE + np.array([3.0, -2.0], np.float32)
    warped = warp_reference(coordinates(), MEAN_FACE, moved, lips_of(moved), LIP_INDICES)
    for k in (27, 33, 48, 62, 8):  # the chin too, though no point holds it
        error = where_read(warped, moved[k]) - (MEAN_FACE[k] + np.round(moved[k]) - moved[k])
        assert np.abs(error).max() < 0.5, k


def test_missing_landmarks_leave_the_reference_as_it_is():
    crop, gone = textured(1), np.full((68, 2), np.nan, np.float32)
    assert warp_reference(crop, gone, MEAN_FACE, lips_of(MEAN_FACE), LIP_INDICES) is crop
    assert warp_reference(crop, MEAN_FACE, gone, lips_of(MEAN_FACE), LIP_INDICES) is crop


@pytest.mark.parametrize("kept", [True, False])
def test_the_chosen_reference_is_warped_only_for_a_generator_trained_so_and_a_bank_that_kept_its_points(kept):
    opened = MEAN_FACE.copy()
    opened[[56, 58, 66], 1] += 5.0
    crops = np.stack([textured(2), textured(3)])
    bank = References(crops, np.stack([lips_of(MEAN_FACE), lips_of(opened)]), [10, 40],
                      np.stack([MEAN_FACE, opened]) if kept else None)
    asked = np.stack([lips_of(opened), lips_of(MEAN_FACE)]) + 0.002
    frame_points = np.stack([MEAN_FACE, MEAN_FACE])
    picked = pick_references(asked, bank)
    assert picked.tolist() == [1, 0]
    plain = chosen_references(asked, bank, frame_points, LIP_INDICES, warp=False)
    assert np.array_equal(plain, crops[picked])
    warped = chosen_references(asked, bank, frame_points, LIP_INDICES, warp=True)
    if not kept:
        assert np.array_equal(warped, crops[picked])  # a bank saved before it kept its points
        return
    for k in range(2):
        expected = warp_reference(crops[picked[k]], bank.landmarks[picked[k]], frame_points[k], asked[k],
                                  LIP_INDICES)
        assert np.array_equal(warped[k], expected)
        assert not np.array_equal(warped[k], crops[picked[k]])
