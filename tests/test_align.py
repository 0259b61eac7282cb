"""The per-frame face stage on real dlib and real decoding: no mocks."""

from __future__ import annotations

import itertools
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from conftest import REAL_CLIP, REAL_MEDIA
from helpers import inter_ocular
from PIL import Image

from tasks.config.params import PreprocessParams
from tasks.rows import align
from tasks.rows import landmarks as lm
from tasks.rows.align import UPSAMPLE, AlignedFrame, FaceTracker, anchors, apply, ladder
from tasks.rows.crop import face_width
from tasks.rows.decode import iter_frames
from tasks.table.sheet import contact_sheet

PARAMS = PreprocessParams()


def _run(
    tracker: FaceTracker, frames: list[np.ndarray]
) -> tuple[list[AlignedFrame], list[np.ndarray | None]]:
    aligned, source = [], []
    for frame in frames:
        aligned.append(tracker(frame))
        source.append(tracker.source_landmarks)
    return aligned, source


@pytest.fixture(scope="module")
def real_frames() -> list[np.ndarray]:
    if not REAL_CLIP.is_file():
        pytest.skip(f"{REAL_CLIP} is absent")
    return list(iter_frames(REAL_CLIP, 30))


@pytest.fixture(scope="module")
def tracked(real_frames):
    tracker = FaceTracker(PARAMS)
    return tracker, *_run(tracker, real_frames)


@pytest.fixture(scope="module")
def detected_every_frame(real_frames):
    tracker = FaceTracker(PARAMS, detect_every=1)
    return tracker, *_run(tracker, real_frames)


@pytest.mark.real_media
def test_real_clip_has_a_face_in_nearly_every_frame(real_frames, tracked):
    _, aligned, _ = tracked
    assert abs(len(real_frames) - 240) <= 1  # 8 s at 25 fps, resampled to 30 fps
    assert sum(a.face_found for a in aligned) >= 0.95 * len(aligned)


@pytest.mark.real_media
def test_aligned_frame_contract(tracked):
    _, aligned, source = tracked
    size = PARAMS.face_size
    for a, points in zip(aligned[:: len(aligned) // 10], source[:: len(aligned) // 10]):
        assert a.face.shape == (size, size, 3) and a.face.dtype == np.uint8
        assert a.landmarks.shape == (68, 2) and a.landmarks.dtype == np.float32
        assert a.lips.shape == (16,) and a.lips.dtype == np.float32
        assert a.crop.shape == (2, 3) and a.crop.dtype == np.float32
        np.testing.assert_allclose(apply(a.crop, points), a.landmarks, atol=1e-3)
        np.testing.assert_allclose(a.lips.reshape(8, 2), a.landmarks[PARAMS.lip_indices] / size, atol=1e-6)
        # The whole face, chin and brows included, lies inside the crop.
        assert a.landmarks.min() > 0.03 * size and a.landmarks.max() < 0.97 * size


@pytest.mark.real_media
def test_tracking_costs_no_accuracy(tracked, detected_every_frame):
    tracker, _, source = tracked
    full_tracker, _, full_source = detected_every_frame
    errors = [
        np.linalg.norm(a[PARAMS.lip_indices] - b[PARAMS.lip_indices], axis=1).mean() / inter_ocular(b)
        for a, b in zip(source, full_source)
        if a is not None and b is not None
    ]
    assert len(errors) >= 0.95 * len(source)
    assert np.mean(errors) <= 0.02
    assert full_tracker.detections >= len(source)
    assert tracker.detections <= len(source) / 5


@pytest.mark.real_media
def test_crop_is_stable(tracked):
    _, aligned, _ = tracked
    crops = np.array([a.crop for a in aligned if a.face_found], np.float64)
    faces = np.array([anchors(a.landmarks) for a in aligned if a.face_found])
    # The crop follows the head, so its translation changes; what must stay small is
    # jitter (its frame-to-frame acceleration) and the face's drift inside the crop.
    jitter = np.linalg.norm(np.diff(crops[:, :, 2], n=2, axis=0), axis=1).mean()
    drift = np.linalg.norm(np.diff(faces, axis=0), axis=2).mean()
    assert jitter < 1.0
    assert drift < 1.0


@pytest.mark.real_media
def test_a_face_that_disappears_is_dropped_at_once_and_found_again(real_frames):
    grey = np.full_like(real_frames[0], 128)
    noise = np.random.default_rng(0).integers(0, 256, real_frames[0].shape, dtype=np.uint8)
    frames = real_frames[:15] + [grey] * 3 + [noise] * 3 + real_frames[15:30]
    aligned, _ = _run(FaceTracker(PARAMS), frames)
    assert [a.face_found for a in aligned] == [True] * 15 + [False] * 6 + [True] * 15


def test_video_without_a_face():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(5)]
    frames += [np.full((240, 320, 3), (40, 90, 160), np.uint8) for _ in range(5)]
    tracker = FaceTracker(PARAMS)
    for frame in frames:
        a = tracker(frame)
        assert not a.face_found
        assert np.isnan(a.landmarks).all() and a.landmarks.shape == (68, 2)
        assert np.isnan(a.lips).all() and a.lips.shape == (16,)
        assert a.face.shape == (PARAMS.face_size, PARAMS.face_size, 3) and a.face.dtype == np.uint8
        assert np.isfinite(a.crop).all()
        assert tracker.source_landmarks is None
    # With no face seen yet the crop is the centred square of the frame.
    np.testing.assert_allclose(
        apply(a.crop, np.array([[40.0, 0.0], [280.0, 240.0]])), [[0, 0], [128, 128]], atol=1e-3
    )
    np.testing.assert_array_equal(a.face, np.full_like(a.face, (40, 90, 160)))


@pytest.mark.real_media
def test_i420_frames_track_like_rgb_frames(real_clip, tracked):
    _, rgb, _ = tracked
    tracker = FaceTracker(PARAMS)
    i420 = [tracker(frame) for frame in iter_frames(real_clip, 30, pix_fmt="yuv420p")]
    assert [a.face_found for a in i420] == [a.face_found for a in rgb]
    found = [(a, b) for a, b in zip(i420, rgb) if b.face_found]
    # The shape predictor reads the Y plane instead of dlib's own grey of RGB: a shade apart.
    lips = [
        np.linalg.norm(a.landmarks[PARAMS.lip_indices] - b.landmarks[PARAMS.lip_indices], axis=1).mean()
        / inter_ocular(b.landmarks)
        for a, b in found
    ]
    assert np.mean(lips) <= 0.01
    # Chroma stays at half resolution and OpenCV converts it, not ffmpeg: a few grey levels.
    assert np.mean([np.abs(a.face.astype(int) - b.face).mean() for a, b in found]) < 4


@pytest.mark.parametrize("face_size", [128, 65])
def test_i420_crop_of_a_plain_frame_keeps_its_colour(face_size):
    rgb = np.full((240, 320, 3), (40, 90, 160), np.uint8)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    a = FaceTracker(PARAMS.model_copy(update={"face_size": face_size}))(i420)
    assert not a.face_found and a.face.shape == (face_size, face_size, 3) and a.face.dtype == np.uint8
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    np.testing.assert_allclose(a.face, rgb[:face_size, :face_size], atol=1)


def _two_faces(left: int, right: int) -> np.ndarray:
    head = skimage.data.astronaut()[30:290, 100:360]
    frame = np.full((420, 720, 3), 90, np.uint8)
    frame[:left, :left] = cv2.resize(head, (left, left), interpolation=cv2.INTER_AREA)
    frame[:right, 720 - right :] = cv2.resize(head, (right, right), interpolation=cv2.INTER_AREA)
    return frame


def test_largest_face_is_picked_and_kept():
    # Both faces are big enough for HOG only without downscaling.
    params = PreprocessParams(detect_width=720)
    tracker = FaceTracker(params, detect_every=2)
    aligned, source = _run(tracker, [_two_faces(400, 260)] * 3)
    assert all(a.face_found for a in aligned)
    assert all(points[:, 0].max() < 360 for points in source)  # the big face, on the left
    # The faces swap sizes: the tracked face is followed, not the one now largest.
    aligned, source = _run(tracker, [_two_faces(260, 400)] * 3)
    assert all(a.face_found for a in aligned)
    assert all(points[:, 0].max() < 360 for points in source)


def test_contact_sheet(tmp_path):
    faces = [np.full((32, 32, 3), shade, np.uint8) for shade in (0, 60, 120)]
    lips = [
        np.full(16, 0.5, np.float32),
        np.full(16, np.nan, np.float32),
        np.linspace(0.1, 0.9, 16, dtype=np.float32),
    ]
    out = contact_sheet(faces, lips, tmp_path / "sheets" / "sheet.png", columns=2)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (64, 64, 3)
    first, second = sheet[:32, :32], sheet[:32, 32:]
    assert (first[..., 1] > 200).any()  # lip points drawn in green
    np.testing.assert_array_equal(second, faces[1])  # NaN lips draw nothing
    np.testing.assert_array_equal(sheet[32:, 32:], 0)  # the unused cell stays blank


def _shrunk(source: Path, out: Path, side: int) -> Path:
    """`source` scaled to side x side and padded to a 640x360 grey frame: a speaker far away."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
                    "-vf", f"scale={side}:{side},pad=640:360:300:80:color=gray",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-an", str(out)], check=True)
    return out


@pytest.mark.real_media
def test_small_faces_are_found_by_upsampling(real_clip, tmp_path):
    # 512 px scaled to 80: a face box of about 40 px, under HOG's 80 px window even at full
    # resolution; only the ladder's top rung (2x) finds it.
    frames = list(iter_frames(_shrunk(real_clip, tmp_path / "wide.mp4", 80), 30, pix_fmt="yuv420p"))
    assert not lm.detect(frames[0][:360]) and lm.detect(cv2.resize(frames[0][:360], (1280, 720)))
    tracker = FaceTracker(PARAMS)
    aligned = [tracker(frame) for frame in frames]
    assert sum(a.face_found for a in aligned) >= 0.9 * len(frames)
    assert tracker.scale == UPSAMPLE  # the rung that worked is kept
    assert tracker.detections <= len(frames) / 4  # tracked in between, not searched every frame
    widths = face_width(np.array([a.crop for a in aligned if a.face_found]), PARAMS.face_size)
    assert 30 < np.median(widths) < 55


@pytest.mark.real_media
def test_a_lost_small_face_is_found_again_near_where_it_was(real_clip, tmp_path):
    frames = list(iter_frames(_shrunk(real_clip, tmp_path / "wide.mp4", 80), 30, pix_fmt="yuv420p"))[:40]
    blank = np.full_like(frames[0], 128)
    tracker = FaceTracker(PARAMS)
    aligned = [tracker(frame) for frame in frames[:20] + [blank] * 2 + frames[20:]]
    assert [a.face_found for a in aligned] == [True] * 20 + [False] * 2 + [True] * 20


def test_ladder_of_scales():
    assert ladder(1280, 320) == [0.25, 1.0, UPSAMPLE]
    assert ladder(320, 320) == ladder(160, 320) == [1.0, UPSAMPLE]


@pytest.mark.real_media
def test_squashed_faces_are_shown_to_hog_restretched(real_frames, tracked):
    # Anamorphic video whose aspect flag was lost: 512x512 squashed to 641x361, faces and all.
    squashed = [cv2.resize(frame, (641, 361), interpolation=cv2.INTER_AREA) for frame in real_frames]
    tracker = FaceTracker(PARAMS)
    aligned = [tracker(frame) for frame in squashed]
    assert sum(a.face_found for a in aligned) >= 0.95 * len(squashed)
    assert 1.5 < tracker.stretch < 2.0  # the picture is 1.78x wider than it should be
    assert tracked[0].stretch == 1.0  # an upright face is left as it is


@pytest.mark.real_media
def test_a_squashed_close_up_is_found_from_its_first_frame_and_measured_right():
    # A close-up HOG misses in every frame squashed: it is found shown square, and the shape
    # predictor's points, back in the picture's proportions, are those of the clip as it is.
    clip = REAL_MEDIA / "map_5s.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    upright = list(itertools.islice(iter_frames(clip, 30), 90))
    height, width = upright[0].shape[:2]
    squashed = [cv2.resize(frame, (641, 361), interpolation=cv2.INTER_AREA) for frame in upright]
    assert not any(lm.detect(cv2.resize(frame, (320, 180))) for frame in squashed[::10])
    tracker = FaceTracker(PARAMS)
    aligned, source = _run(tracker, squashed)
    assert all(a.face_found for a in aligned)
    assert 1.5 < tracker.stretch < 2.0  # the picture is 1.78x wider than it should be
    _, reference = _run(FaceTracker(PARAMS), upright)
    restretched = [points[PARAMS.lip_indices] * [width / 641, height / 361] for points in source]
    lips = [
        np.linalg.norm(a - b[PARAMS.lip_indices], axis=1).mean() / inter_ocular(b)
        for a, b in zip(restretched, reference)
    ]
    assert np.mean(lips) < 0.03


@pytest.mark.real_media
def test_upright_faces_in_a_wide_frame_are_tracked_as_before(real_frames, monkeypatch):
    # The real clip padded to 16:9: its climbs also show HOG the frame square, and keep what
    # they found upright.
    wide = [cv2.copyMakeBorder(frame, 0, 0, 199, 199, cv2.BORDER_CONSTANT, value=(128, 128, 128))
            for frame in real_frames]
    tracker = FaceTracker(PARAMS)
    aligned, source = _run(tracker, wide)
    monkeypatch.setattr(align, "HOG_SQUASH", math.inf)  # never shown square
    before = FaceTracker(PARAMS)
    _, reference = _run(before, wide)
    assert all(a.face_found for a in aligned) and tracker.stretch == 1.0
    assert tracker.detections > before.detections
    for points, expected in zip(source, reference):
        np.testing.assert_array_equal(points, expected)
