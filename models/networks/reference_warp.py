"""A reference crop bent to the frame it is painted into (ARCHITECTURE.md, Adapted targets: warped
references): the frame generator copies texture and teeth from a reference crop of the same person
(models/networks/unet.py), but the nearest lips in the bank are a mouth of another moment, in that
moment's pose and shape. Moving that texture to where the frame needs it is what a stack of 3x3
convolutions does worst: what shows is the reference's own outline, faint, around the painted lips.

So, where the generator was trained that way (`cgan.warp_references`), each reference is warped first,
as Synthesizing Obama warps its retrieved mouths: a thin-plate spline takes the reference's nose and upper
jaw onto the painted frame's (its pose) and its lip points onto the lips asked for (its shape), and the
generator paints the change that is left. The spline is solved on the few points, evaluated on a coarse
lattice and upsampled (~1 ms a 128 px crop); its smoothing keeps a jittery landmark from folding the crop.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# The points that place the face and do not move with the mouth: the nose's bridge and base, and the jaw
# below the ears (dlib's 68-point numbering).
POSE = [*range(27, 36), 2, 3, 13, 14]
# The spline's side: its lattice is LATTICE x LATTICE points over the crop, upsampled linearly.
LATTICE = 32
# Regularisation of the spline (crop pixels squared): a little, so that noisy points bend it smoothly.
SMOOTHING = 1.0


def _kernel(squared: np.ndarray) -> np.ndarray:
    """The thin-plate spline's radial function of squared distances, r^2 log r."""
    return 0.5 * squared * np.log(np.where(squared > 0, squared, 1.0))


def _spline(at: np.ndarray, values: np.ndarray, side: int) -> np.ndarray:
    """(side, side, 2) float32: the thin-plate spline through `values` (n, 2) at the points `at` (n, 2),
    in crop pixels, over the whole crop."""
    n = len(at)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _kernel(((at[:, None] - at[None]) ** 2).sum(-1)) + SMOOTHING * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1 :] = at
    system[n + 1 :, :n] = at.T
    coefficients = np.linalg.solve(system, np.vstack([values, np.zeros((3, 2))]))
    lattice = _lattice(side)
    field = _kernel(((lattice[:, None] - at[None]) ** 2).sum(-1)) @ coefficients[:n]
    field += coefficients[n] + lattice @ coefficients[n + 1 :]
    return cv2.resize(field.reshape(LATTICE, LATTICE, 2).astype(np.float32), (side, side),
                      interpolation=cv2.INTER_LINEAR)


def warp_reference(crop: np.ndarray, landmarks: np.ndarray, to_landmarks: np.ndarray, to_lips: np.ndarray,
                   lip_indices: list[int]) -> np.ndarray:
    """The (S, S, 3) uint8 reference `crop` (its 68 `landmarks`, crop pixels) warped so that its pose
    points fall on the painted frame's (`to_landmarks`) and its lip points (`lip_indices`) on `to_lips`
    (LIPS_DIM, [0, 1] of the crop, as the frame table keeps them). The crop as it is when any of them is
    missing (NaN)."""
    side = crop.shape[0]
    points, to_points = np.asarray(landmarks, np.float64), np.asarray(to_landmarks, np.float64)
    source = np.vstack([points[POSE], points[lip_indices]])
    target = np.vstack([to_points[POSE], np.asarray(to_lips, np.float64).reshape(-1, 2) * side])
    if not (np.isfinite(source).all() and np.isfinite(target).all()):
        return crop
    # backwards: each painted pixel reads the reference where the spline sends it
    grid = _pixels(side) + _spline(target, source - target, side)
    return cv2.remap(crop, grid, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=4)
def _lattice(side: int) -> np.ndarray:
    """(LATTICE ** 2, 2) float64: the points the spline is evaluated at, evenly over a crop of `side`."""
    ticks = np.linspace(0.0, side - 1.0, LATTICE)
    return np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2)


@lru_cache(maxsize=4)
def _pixels(side: int) -> np.ndarray:
    """(side, side, 2) float32: each pixel's own (x, y)."""
    pixels = np.stack(np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32)), -1)
    pixels.flags.writeable = False
    return pixels
