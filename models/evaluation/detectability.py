"""Can a classifier tell a painted lower face from the real one? (ARCHITECTURE.md, Metrics)

- detectability: a linear classifier (scikit-learn's logistic regression on standardised features) learns,
  on some held-out frames, to tell the real lower face (each frame's real crop) from ours (the same
  frame painted and composited), and is scored on the rest: its accuracy over all frames, each frame
  tested once. 0.5: no better than a coin; 1.0: every frame given away. Cross-validated over FOLDS
  contiguous blocks of frames; the frames within GAP frames of a test block are left out of its training
  set, so a neighbour of a test frame (nearly the same picture) never teaches the classifier the answer.
  A frame's real and painted crops always sit on the same side.
- detectability_blurred: the same test of the real frames against themselves blurred inside the mask
  (a Gaussian, blended by the soft compositing mask as a composite is) as soft as ours, or as
  CONTROL_SHARPNESS when ours is sharper (`control_sigma`; `matched_blur`: the sigma at which their
  sharpness, models/evaluation/mouth_metrics.py, is that). A test that cannot catch that (under
  CONTROL_FLOOR) is blind to the softness a painted mouth shows; blur_sigma says how strong it was. The
  floor keeps the control a blur a viewer sees: matched to a mouth nearly as sharp as the real one, the
  blur would be too slight for any test to catch, and say nothing of the test.
- detectability_neighbour: the same test of the real frames against themselves with the real lower face of
  the held-out frame NEIGHBOUR places later blended in by the soft mask: a real mouth a few frames off,
  whose jaw and cheeks no longer quite meet the frame's. A scale to read ours on: the test does not only
  catch paintings, it catches any lower face that is not this frame's own.
- detectability_resampled: the same test of the real frames against themselves with their lower face
  brought down to the side ours was painted at and back up (`resampled`: area down, cubic up, as a
  render scales a painting into the frame), blended in by the soft mask: what the painting's size alone
  gives away, however well it is painted. 0.5 when ours is painted at the side it is measured at.

Features of an image (`lower_face_features`), over the box around its hard mask cut into GRID cells, at
the crop's own pixels (no resizing, which would hide softness): per cell the log mean gradient
magnitude, the share of it in each of ORIENTATIONS directions (a HOG cell), and the log mean
magnitude of BANDS band-pass (difference of Gaussians) images; over the mask, the mean and spread of
each CIELAB channel. Softness, missing texture, teeth and colour all move some of them.
"""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.evaluation.mouth_metrics import inside, sharpness

FOLDS = 5
GAP = 5  # frames: a test block's neighbours this close are kept out of its training set
MIN_FRAMES = 4 * FOLDS  # fewer frames than this: too few to train and test a classifier on
GRID = (3, 4)  # rows, columns of cells over the hard mask's box
ORIENTATIONS = 8
BANDS = (0.7, 1.4, 2.8)  # sigma of the finer Gaussian of each band (the coarser: twice it)
C = 0.1  # the logistic regression's inverse regularisation: ~150 features, tens of frames
CONTROL_FLOOR = 0.8  # detectability_blurred under this: the test is blind
MAX_SIGMA = 8.0  # px: matched_blur's widest Gaussian
# The control's sharpness when ours is sharper: the frame generator's when this test was first asked for
# (0.88-0.93 of the real frames'), a softness a viewer sees.
CONTROL_SHARPNESS = 0.9
NEIGHBOUR = 2  # frames: the neighbour control's offset (67 ms at 30 fps)


def lower_face_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The feature vector of one (S, S, 3) uint8 image inside its mask (S, S), soft or hard."""
    region = inside(mask)
    rows, columns = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if not len(rows):
        raise ValueError("lower_face_features: the mask is empty")
    box = np.s_[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dx, dy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(dx, dy)
    direction = (np.mod(angle, np.pi) / np.pi * ORIENTATIONS).astype(int) % ORIENTATIONS
    bands = [np.abs(cv2.GaussianBlur(grey, (0, 0), s) - cv2.GaussianBlur(grey, (0, 0), 2 * s)) for s in BANDS]
    features = []
    for cell in _cells(box, GRID):
        strength = magnitude[cell]
        total = strength.sum() + 1e-6
        histogram = np.bincount(direction[cell].ravel(), strength.ravel(), ORIENTATIONS) / total
        features += [np.log1p(strength.mean()), *histogram, *(np.log1p(band[cell].mean()) for band in bands)]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[region].astype(np.float32)
    return np.array([*features, *lab.mean(0), *lab.std(0)], np.float32)


def _cells(box: tuple[slice, slice], grid: tuple[int, int]) -> list[tuple[slice, slice]]:
    ys = np.linspace(box[0].start, box[0].stop, grid[0] + 1).round().astype(int)
    xs = np.linspace(box[1].start, box[1].stop, grid[1] + 1).round().astype(int)
    return [np.s_[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)]
            for i in range(grid[0]) for j in range(grid[1])]


def block_folds(frames: np.ndarray, folds: int = FOLDS,
                gap: int = GAP) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions into `frames` (frame numbers, ascending): `folds` contiguous test blocks, each
    one's training set every frame more than `gap` frames from all of its frames."""
    frames = np.asarray(frames)
    splits = []
    for test in np.array_split(np.arange(len(frames)), folds):
        near = (frames >= frames[test[0]] - gap) & (frames <= frames[test[-1]] + gap)
        splits.append((np.flatnonzero(~near), test))
    return splits


def detectability(real: np.ndarray, ours: np.ndarray, masks: np.ndarray, frames: np.ndarray) -> float:
    """The block-cross-validated accuracy of telling `real` from `ours` ((N, S, S, 3) uint8, the same
    frames in the same order, `frames` their numbers) over `masks` (N, S, S): 0.5 when it cannot."""
    if not len(real) == len(ours) == len(masks) == len(frames):
        raise ValueError(f"detectability: {len(real)} real, {len(ours)} painted frames, {len(masks)} masks "
                         f"and {len(frames)} frame numbers; they must be the same frames")
    return accuracy(features_of(real, masks), features_of(ours, masks), frames)


def features_of(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, features): `lower_face_features` of each image in its mask."""
    return np.stack([lower_face_features(image, mask) for image, mask in zip(images, masks)])


def accuracy(real: np.ndarray, ours: np.ndarray, frames: np.ndarray) -> float:
    """`detectability` from the features of the real frames and of ours (N, features), or any of their
    columns."""
    if len(frames) < MIN_FRAMES:
        raise ValueError(f"detectability: {len(frames)} frames, at least {MIN_FRAMES} needed")
    correct = 0
    for train, test in block_folds(frames):
        if not len(train):
            raise ValueError(f"detectability: a test block leaves no frame to train on "
                             f"({len(frames)} frames)")
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        classifier.fit(np.concatenate([real[train], ours[train]]), np.repeat([1, 0], len(train)))
        correct += int((classifier.predict(real[test]) == 1).sum())
        correct += int((classifier.predict(ours[test]) == 0).sum())
    return correct / (2 * len(frames))


def blended(images: np.ndarray, others: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """`others` blended into `images` (uint8, one or a batch) by their soft `masks`, as a composite blends:
    the controls' one way of putting a lower face in."""
    alpha = np.clip(np.asarray(masks, np.float32), 0, 1)[..., None]
    return np.round(images * (1 - alpha) + others * alpha).astype(np.uint8)


def blurred(images: np.ndarray, masks: np.ndarray, sigma: float) -> np.ndarray:
    """`images` Gaussian-blurred (`sigma` px) inside their soft `masks`, blended as a composite is."""
    if sigma <= 0:
        return images.copy()
    return np.stack([blended(image, cv2.GaussianBlur(image, (0, 0), sigma).astype(np.float32), mask)
                     for image, mask in zip(images, masks)])


def neighbours(images: np.ndarray, masks: np.ndarray, offset: int = NEIGHBOUR) -> np.ndarray:
    """Each of `images` with the lower face of the image `offset` places later (earlier, for the last
    `offset`) blended in by its soft mask, as `blurred` blends: a real mouth a few frames off."""
    if len(images) <= offset:
        raise ValueError(f"neighbours: {len(images)} images, more than {offset} needed")
    places = np.arange(len(images)) + offset
    places[places >= len(images)] -= 2 * offset
    return blended(images, images[np.abs(places)], masks)


def resampled(images: np.ndarray, masks: np.ndarray, side: int) -> np.ndarray:
    """Each of `images` with its own lower face brought down to `side` pixels and back (area down, cubic
    up) blended in by its soft mask, as `blurred` blends: the real frame painted perfectly at `side`."""
    size = images.shape[1]
    if side == size:
        return images.copy()
    down = [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in images]
    return np.stack([blended(image, cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).astype(
        np.float32), mask) for image, small, mask in zip(images, down, masks)])


def matched_blur(real: np.ndarray, masks: np.ndarray, target: float, steps: int = 20) -> float:
    """The Gaussian sigma (px) at which `blurred` real frames have sharpness `target` (ours'), by
    bisection; 0 when `target` is at least 1 (as sharp as the real frames) or not a number."""
    if not np.isfinite(target) or target >= 1:
        return 0.0
    low, high = 0.0, MAX_SIGMA
    for _ in range(steps):
        middle = (low + high) / 2
        if sharpness(blurred(real, masks, middle), masks, real) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def control_sigma(real: np.ndarray, masks: np.ndarray, ours: float) -> float:
    """The blur of the control (see the top): `real` as soft as `ours` (a sharpness), or as
    CONTROL_SHARPNESS when ours is sharper or not a number."""
    return matched_blur(real, masks, min(ours, CONTROL_SHARPNESS) if np.isfinite(ours) else CONTROL_SHARPNESS)


def detectability_scores(real: np.ndarray, ours: np.ndarray, masks: np.ndarray,
                         frames: np.ndarray) -> dict[str, float]:
    """{detectability, detectability_blurred, blur_sigma} of `ours` against `real` (see the top)."""
    sigma = control_sigma(real, masks, sharpness(ours, masks, real))
    return {"detectability": detectability(real, ours, masks, frames),
            "detectability_blurred": detectability(real, blurred(real, masks, sigma), masks, frames),
            "blur_sigma": sigma}
