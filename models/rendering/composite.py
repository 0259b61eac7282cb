"""Compositing: a generated 128x128 face put back into the target's own frame (ARCHITECTURE.md, Rendering).

Per frame, from that frame's row of the frame table (its crop transform and 68 landmarks):

1. a soft mask of the lower face in crop pixels (models/networks/mask.py, the region the frame generator
   paints): the jaw line from cheek to cheek, closed along the base of the nose, the jaw pushed outwards
   so that a generated chin lower than the real one is still inside, feathered by a Gaussian whose width
   is a share of the face (the crop is scaled to the face, so a fixed width in crop pixels is
   proportional to the face in the frame);
2. the generated face shifted to the real frame's colour in the band where the mask fades;
3. face and mask warped back with the inverse of the crop transform, onto the face's region of
   the frame only, at the frame's own resolution, and blended there in two bands: coarse changes
   over the whole feather, fine detail only well inside the mask, so the frame's own texture
   reaches the border.

Everything outside the region is the source frame's pixels. A frame without a face passes through.
`hard_paste` is the yardstick: the whole crop's box pasted back, as Wav2Lip does.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.networks.mask import lower_face_mask

# Fine detail (finer than DETAIL_SIGMA crop pixels: the generator's softest scale) comes from the
# generated face only where the mask is past DETAIL_START, fully past DETAIL_FULL (blend_bands).
DETAIL_SIGMA = 1.5
DETAIL_START, DETAIL_FULL = 0.6, 0.9
# Fewer pixels than this in the fading band (a face mostly off the crop): no colour to match.
MIN_BAND = 16
# Crop pixels worked on beyond the mask's box: the coarse band's blur (6 px at DETAIL_SIGMA) and the
# warps' reach (2 px, cubic); beyond it nothing reaches a pixel the mask blends.
BOX_MARGIN = 8


def match_colour(face: np.ndarray, real: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`face` (uint8 RGB crop) shifted per channel so that its mean in the mask's fading band equals
    the real crop's there: lighting that changed since training does not show as a seam."""
    band = cv2.inRange(mask, 0.05, 0.95)
    if cv2.countNonZero(band) < MIN_BAND:
        return face
    shift = np.subtract(cv2.mean(real, band), cv2.mean(face, band))
    return cv2.add(face, tuple(shift))  # saturating: a shift below 0 or past 255 clips


def _region(
    crop: np.ndarray, size: int, frame_shape: tuple[int, ...], box: tuple[int, int, int, int] | None = None
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the frame pixels that `box` (x0, y0, x1, y1 in crop pixels; default the whole
    crop) covers, clipped to the frame; None if none."""
    inverse = cv2.invertAffineTransform(np.asarray(crop, np.float64))
    bx0, by0, bx1, by1 = box or (0, 0, size, size)
    corners = np.array([[bx0, by0], [bx1, by0], [bx0, by1], [bx1, by1]], np.float64) @ inverse[:, :2].T
    corners += inverse[:, 2]
    height, width = frame_shape[:2]
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def warp_back(
    image: np.ndarray,
    crop: np.ndarray,
    region: tuple[int, int, int, int],
    interpolation: int,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """A crop-space image (face or mask) in the frame's `region`: the inverse of the crop transform."""
    x0, y0, x1, y1 = region
    inverse = cv2.invertAffineTransform(np.asarray(crop, np.float64))
    inverse[:, 2] -= (x0, y0)
    return cv2.warpAffine(image, inverse, (x1 - x0, y1 - y0), flags=interpolation, borderMode=border)


def blend(
    frame: np.ndarray, face: np.ndarray, alpha: np.ndarray, region: tuple[int, int, int, int]
) -> np.ndarray:
    """A copy of `frame` with `face` alpha-blended into `region` (face and alpha already in frame pixels)."""
    x0, y0, x1, y1 = region
    out = frame.copy()
    real = frame[y0:y1, x0:x1].astype(np.float32)
    mixed = real + (face.astype(np.float32) - real) * alpha[..., None]
    out[y0:y1, x0:x1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out


def blend_bands(
    frame: np.ndarray,
    face: np.ndarray,
    coarse: np.ndarray,
    alpha: np.ndarray,
    region: tuple[int, int, int, int],
) -> np.ndarray:
    """`blend` in two bands: what the face changes coarsely (`coarse`: its difference from the frame,
    blurred; shading, the jaw, the mouth) fades in over the whole feather; its fine detail only where
    the mask is nearly whole (DETAIL_START..DETAIL_FULL). Where the mask fades, the frame keeps its
    own skin texture instead of an average of it and the generator's softer one: no blurred ring."""
    x0, y0, x1, y1 = region
    out = frame.copy()
    real = frame[y0:y1, x0:x1].astype(np.float32)
    # real + coarse * alpha + (face - real - coarse) * detail_alpha, regrouped so that each pass over
    # the region is one in-place operation: real + (face - real) * d + coarse * (alpha - d)
    detail_alpha = np.clip((alpha - DETAIL_START) * (1 / (DETAIL_FULL - DETAIL_START)), 0, 1)
    change = face.astype(np.float32)
    change -= real
    change *= detail_alpha[..., None]
    coarse *= (alpha - detail_alpha)[..., None]
    real += coarse
    out[y0:y1, x0:x1] = cv2.add(real, change, dtype=cv2.CV_8U)  # rounds and saturates
    return out


def composite(
    frame: np.ndarray,
    face: np.ndarray,
    crop: np.ndarray,
    landmarks: np.ndarray,
    face_found: bool = True,
    with_alpha: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(frame with the generated lower face blended in, the mask over the whole frame when `with_alpha`).

    frame: (H, W, 3) uint8 RGB source frame; face: (S, S, 3) uint8 generated crop; crop: the row's
    (2, 3) transform source pixels -> crop pixels; landmarks: the row's 68 points in crop pixels.
    Without a face (or with NaN landmarks) the frame comes back unchanged and the alpha is None.
    """
    size = face.shape[0]
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 2)
    crop = np.asarray(crop, np.float64).reshape(2, 3)
    if not face_found or not np.isfinite(landmarks).all():
        return frame, None
    mask = lower_face_mask(landmarks, size)
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    support = (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1) if len(rows) else None
    region = _region(crop, size, frame.shape, support) if support else None
    if region is None:
        return frame, None
    # In crop pixels, only the mask's box and BOX_MARGIN around it are worked on: all that reaches the
    # blended pixels (the whole crop's values to a unit of rounding, tests/test_composite.py)
    x0, y0, x1, y1 = support
    x0, y0, x1, y1 = max(x0 - BOX_MARGIN, 0), max(y0 - BOX_MARGIN, 0), min(x1 + BOX_MARGIN, size), \
        min(y1 + BOX_MARGIN, size)
    crop = crop.copy()
    crop[:, 2] -= (x0, y0)  # source pixels -> the box's pixels
    mask, face = mask[y0:y1, x0:x1], face[y0:y1, x0:x1]
    real = cv2.warpAffine(frame, crop, (x1 - x0, y1 - y0), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)
    face = match_colour(face, real, mask)
    # the coarse change, blurred where it is cheap: in crop pixels, then warped like the face
    change = face.astype(np.float32) - real.astype(np.float32)
    coarse = cv2.GaussianBlur(change, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REPLICATE)
    alpha = warp_back(mask, crop, region, cv2.INTER_LINEAR)
    warped = warp_back(face, crop, region, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
    coarse = warp_back(coarse, crop, region, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    mixed = blend_bands(frame, warped, coarse, alpha, region)
    return mixed, (_whole(alpha, region, frame.shape) if with_alpha else None)


def _whole(alpha: np.ndarray, region: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    full = np.zeros(shape[:2], np.float32)
    x0, y0, x1, y1 = region
    full[y0:y1, x0:x1] = alpha
    return full


def hard_paste(
    frame: np.ndarray, face: np.ndarray, crop: np.ndarray, face_found: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The baseline: the crop's whole box warped back and pasted without a mask or colour match;
    (frame, the box over the whole frame or None)."""
    size = face.shape[0]
    crop = np.asarray(crop, np.float64).reshape(2, 3)
    region = _region(crop, size, frame.shape) if face_found else None
    if region is None:
        return frame, None
    box = warp_back(np.ones((size, size), np.float32), crop, region, cv2.INTER_NEAREST)
    warped = warp_back(face, crop, region, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
    return blend(frame, warped, box, region), _whole(box, region, frame.shape)

