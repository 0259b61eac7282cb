"""The face of the demo corpus: scikit-image's astronaut photo, its mouth opened on demand.

Built once per frame size (`face_rig`) and reused for every clip: a closed-mouth base image
and, for a grid of mouth openings x widths, the thin-plate-spline maps that open it. A frame
then costs a blend of four coarse maps, one `cv2.remap` with the head motion folded in, and
the mouth interior drawn over the gap.

Coordinates: the "canvas" is the photo's face window scaled to the frame size plus a margin
on every side, so that head motion never samples outside it; landmarks live on the canvas.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data
from scipy.interpolate import CubicSpline, RBFInterpolator

from tasks.rows.landmarks import find_landmarks

# The photo's face window (pixels of the 512^2 photo), scaled up to the frame size: at 512 px the
# inter-ocular distance is ~90 px, where dlib's lip points are steady (on the raw photo, ~45 px,
# they jitter and mouth-opening correlation drops).
WINDOW = 256
WINDOW_DROP = 10  # window centre below the landmarks' mean: room for the hair above
OPENINGS = 24  # mouth-opening levels, 0 (closed) .. 1 (widest)
WIDTHS = (-1.0, 0.0, 1.0)  # rounded ("oo") .. neutral .. spread ("ee")
GRID = 4  # the maps are smooth: stored every GRID pixels, interpolated per frame
MAX_GAP = 0.28  # widest inner-lip gap, as a share of the mouth's width
MAX_SPREAD = 0.10  # mouth width change at width -1 / +1, as a share of the mouth's width
DENSE = 4  # spline points per landmark interval on the inner lips

TOP_INNER, BOTTOM_INNER = [60, 61, 62, 63, 64], [64, 65, 66, 67, 60]
TOP_OUTER, BOTTOM_OUTER = [49, 50, 51, 52, 53], [55, 56, 57, 58, 59]
# How far each jaw point follows the chin when the mouth opens.
JAW_FOLLOW = {4: 0.1, 5: 0.3, 6: 0.55, 7: 0.8, 8: 0.9, 9: 0.8, 10: 0.55, 11: 0.3, 12: 0.1}


def _inner_contour(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense inner-lip curves, top (60 -> 64) and bottom (64 -> 60), through dlib's points."""

    def dense(points: np.ndarray) -> np.ndarray:
        t = np.arange(len(points))
        return CubicSpline(t, points, bc_type="natural")(np.linspace(0, t[-1], DENSE * t[-1] + 1))

    return dense(landmarks[TOP_INNER]), dense(landmarks[BOTTOM_INNER])


def _profile(landmarks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """1 at the mouth's centre line, falling towards its corners: lips open most in the middle."""
    left, right = landmarks[48, 0], landmarks[54, 0]
    u = np.clip((x - (left + right) / 2) / ((right - left) / 2), -1, 1)
    return 0.35 + 0.65 * np.cos(u * np.pi / 2)


def _anchors(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fixed points that keep the warp local: a ring below the jaw and a box around the canvas."""
    jaw = landmarks[0:17]
    centre = landmarks.mean(0)
    ring = centre + (jaw - centre) * 1.45
    h, w = shape
    t = np.linspace(0, 1, 7)[:-1]
    box = np.concatenate(
        [
            np.stack([t * w, 0 * t], 1),
            np.stack([w + 0 * t, t * h], 1),
            np.stack([w - t * w, h + 0 * t], 1),
            np.stack([0 * t, h - t * h], 1),
        ]
    )
    return np.concatenate([ring, box]).astype(np.float64)


def _tps_field(target: np.ndarray, source: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Displacement (GRID-spaced, float32 (gh, gw, 2)) such that canvas pixel p shows source pixel p + d."""
    h, w = shape
    ys, xs = np.mgrid[0 : h + GRID : GRID, 0 : w + GRID : GRID].astype(np.float64)
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    tps = RBFInterpolator(target, source - target, kernel="thin_plate_spline", degree=1)
    return tps(grid).reshape(*xs.shape, 2).astype(np.float32)


def _dense_field(field: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = cv2.remap(field, xs / GRID, ys / GRID, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return xs + d[..., 0], ys + d[..., 1]


def _closed_mouth(canvas: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo smiles with teeth showing: paint the gap with lip colour and close the lips."""
    inner = landmarks[60:68].astype(np.int32)
    outer = landmarks[48:60].astype(np.int32)
    mouth_w = np.ptp(landmarks[[48, 54], 0])
    gap_mask = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillPoly(gap_mask, [inner], 255)
    gap_mask = cv2.dilate(gap_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    lip_mask = np.zeros_like(gap_mask)
    cv2.fillPoly(lip_mask, [outer], 255)
    lip_colour = np.median(canvas[(lip_mask > 0) & (gap_mask == 0)], axis=0)
    alpha = cv2.GaussianBlur(gap_mask, (0, 0), mouth_w / 60)[..., None] / 255.0
    painted = (canvas * (1 - alpha) + lip_colour * alpha).astype(np.uint8)

    closed = landmarks.copy()
    top, bottom = [61, 62, 63], [67, 66, 65]
    gaps = landmarks[bottom, 1] - landmarks[top, 1]
    meet = landmarks[top] + 0.3 * (landmarks[bottom] - landmarks[top])
    closed[top] = meet
    closed[bottom] = meet
    closed[TOP_OUTER[1:4]] += np.stack([0 * gaps, 0.3 * gaps], 1)
    closed[[49, 53], 1] += 0.15 * gaps.mean()
    closed[BOTTOM_OUTER[1:4]] -= np.stack([0 * gaps, 0.7 * gaps[::-1]], 1)
    closed[[55, 59], 1] -= 0.35 * gaps.mean()
    for i, follow in JAW_FOLLOW.items():
        closed[i, 1] -= 0.7 * gaps.mean() * follow
    # Coincident closed points cannot map to two photo points: only the meeting line is pinned,
    # to the middle of the painted gap.
    keep = [i for i in range(68) if i not in (65, 66, 67)]
    target = np.concatenate([closed[keep], _anchors(landmarks, canvas.shape[:2])])
    source = np.concatenate([landmarks[keep], _anchors(landmarks, canvas.shape[:2])])
    source[[keep.index(i) for i in top]] = (landmarks[top] + landmarks[bottom]) / 2
    field = _tps_field(target, source, canvas.shape[:2])
    base = cv2.remap(
        painted, *_dense_field(field, canvas.shape[:2]), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )

    # The seam where the lips meet, drawn once: when the mouth opens it lies inside the gap.
    line, _ = _inner_contour(closed)
    seam = (lip_colour * (0.55, 0.38, 0.4)).tolist()
    cv2.polylines(base, [np.round(line * 16).astype(np.int32)], False, seam, 1, cv2.LINE_AA, 4)
    return base, closed, lip_colour


def open_mouth(closed: np.ndarray, opening: float, width: float) -> np.ndarray:
    """Landmarks with the mouth `opening` (0..1) of the widest and `width` (-1 rounded .. 1 spread)."""
    out = closed.copy()
    mouth_w = closed[54, 0] - closed[48, 0]
    gap = opening * MAX_GAP * mouth_w
    lips = np.arange(48, 68)
    f = _profile(closed, closed[lips, 0])
    dy = np.zeros(len(lips))
    for group, share in ((TOP_OUTER + [61, 62, 63], -0.25), (BOTTOM_OUTER + [65, 66, 67], 0.75)):
        idx = np.asarray(group) - 48
        dy[idx] = share * gap * f[idx]
    dy[[0, 6, 12, 16]] = 0.3 * gap  # the corners (48, 54, 60, 64) drop with the jaw
    out[lips, 1] += dy
    # Rounding narrows the lips towards their centre, and spreading widens them; an open jaw
    # pulls the corners in a little too.
    centre_x = (closed[48, 0] + closed[54, 0]) / 2
    out[lips, 0] = centre_x + (out[lips, 0] - centre_x) * (1 + MAX_SPREAD * width - 0.08 * opening)
    for i, follow in JAW_FOLLOW.items():
        out[i, 1] += 0.8 * gap * follow
    return out


def _controls(landmarks: np.ndarray, closed: bool) -> np.ndarray:
    """Landmarks with the inner lips replaced by their dense curves; a closed mouth's bottom curve
    lies on its top one, so it is left out where the points are a spline's nodes."""
    top, bottom = _inner_contour(landmarks)
    rest = np.delete(landmarks, np.arange(60, 68), axis=0)
    return np.concatenate([rest, top] if closed else [rest, top, bottom[1:-1]])


@dataclass(frozen=True)
class FaceRig:
    base: np.ndarray  # canvas RGB uint8, mouth closed
    landmarks: np.ndarray  # (68, 2) on the canvas, mouth closed
    fields: np.ndarray  # (OPENINGS, len(WIDTHS), gh, gw, 2) GRID-spaced displacements
    margin: int  # canvas pixels on each side of the frame
    head: np.ndarray  # (size, size) weight of the head motion: 1 on the head, 0 on the background
    pivot: np.ndarray  # (2,) canvas point the head turns about: the neck
    pixels: np.ndarray  # (2, size, size) float32 x and y of every frame pixel
    lip_inside: np.ndarray  # RGB float32 where the lips meet the mouth's interior

    def field(self, opening: float, width: float) -> np.ndarray:
        """Bilinear blend of the four nearest precomputed levels."""
        o = np.clip(opening, 0, 1) * (OPENINGS - 1)
        k = np.interp(np.clip(width, -1, 1), WIDTHS, np.arange(len(WIDTHS)))
        o0, k0 = min(int(o), OPENINGS - 2), min(int(k), len(WIDTHS) - 2)
        fo, fk = float(o - o0), float(k - k0)
        f = self.fields
        return (1 - fo) * ((1 - fk) * f[o0, k0] + fk * f[o0, k0 + 1]) + fo * (
            (1 - fk) * f[o0 + 1, k0] + fk * f[o0 + 1, k0 + 1]
        )


@functools.lru_cache(maxsize=2)
def face_rig(size: int) -> FaceRig:
    """The base face and its opening maps for `size`^2 frames; cached, since every clip shares them."""
    photo = skimage.data.astronaut()
    native = find_landmarks(photo)
    if native is None:
        raise RuntimeError("dlib found no face in scikit-image's astronaut photo")
    scale = size / WINDOW
    margin = size // 16
    cx, cy = native.mean(0) + (0, WINDOW_DROP)
    to_canvas = np.array(
        [[scale, 0, margin - scale * (cx - WINDOW / 2)], [0, scale, margin - scale * (cy - WINDOW / 2)]],
        np.float64,
    )
    shape = (size + 2 * margin, size + 2 * margin)
    canvas = cv2.warpAffine(
        photo, to_canvas, shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    landmarks = find_landmarks(canvas)
    if landmarks is None:
        raise RuntimeError("dlib found no face in the scaled astronaut photo")
    base, closed, lip_colour = _closed_mouth(canvas, landmarks.astype(np.float64))

    anchors = _anchors(closed, shape)
    levels = []
    for opening in np.linspace(0, 1, OPENINGS):
        source = np.concatenate([_controls(closed, opening == 0), anchors])
        targets = [
            np.concatenate([_controls(open_mouth(closed, opening, w), opening == 0), anchors]) for w in WIDTHS
        ]
        levels.append([_tps_field(target, source, shape) for target in targets])
    fields = np.asarray(levels, np.float32)

    # The head moves, the background and shoulders stay: motion weight 1 inside an ellipse around
    # the head, fading to 0 over the collar.
    pixels = np.stack(np.mgrid[0:size, 0:size][::-1]).astype(np.float32)
    xs, ys = pixels + margin
    centre = closed[17:68].mean(0) - (0, 0.25 * size / 2)
    radius = np.array([0.36, 0.40]) * size
    r = np.hypot((xs - centre[0]) / radius[0], (ys - centre[1]) / radius[1])
    t = np.clip((1.45 - r) / 0.45, 0, 1)
    head = (t * t * (3 - 2 * t)).astype(np.float32)
    pivot = closed[8] + (0, 0.12 * size)
    # The wet inner edge of the lips: the lip colour, darker and redder.
    lip_inside = (lip_colour * (0.72, 0.5, 0.52)).astype(np.float32)
    return FaceRig(base, closed, fields, margin, head, pivot, pixels, lip_inside)


def render(rig: FaceRig, opening: float, width: float, motion: tuple[float, float, float]) -> np.ndarray:
    """One RGB frame: the mouth at `opening`/`width`, the head turned by `motion` (degrees, dx, dy)."""
    angle, tx, ty = motion
    c, s = float(np.cos(np.radians(angle))), float(np.sin(np.radians(angle)))
    tx, ty = float(tx), float(ty)
    xs, ys = rig.pixels
    px, py = xs + float(rig.margin - rig.pivot[0]), ys + float(rig.margin - rig.pivot[1])
    # Where each frame pixel comes from on the canvas: the inverse head motion, weighted so the
    # background stays put, then the mouth warp at that point.
    qx = xs + rig.margin + rig.head * ((c - 1) * px + s * py - (c * tx + s * ty))
    qy = ys + rig.margin + rig.head * (-s * px + (c - 1) * py - (-s * tx + c * ty))
    d = cv2.remap(
        rig.field(opening, width), qx / GRID, qy / GRID, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    frame = cv2.remap(
        rig.base, qx + d[..., 0], qy + d[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )

    lips = open_mouth(rig.landmarks, opening, width)
    forward = np.array([[c, -s], [s, c]])
    top, bottom = (
        (curve - rig.pivot) @ forward.T + rig.pivot + (tx - rig.margin, ty - rig.margin)
        for curve in _inner_contour(lips)
    )
    mouth_w = lips[54, 0] - lips[48, 0]
    _draw_interior(frame, top, bottom, mouth_w, opening * MAX_GAP * mouth_w, rig.lip_inside)
    return frame


THROAT = np.array([38, 10, 14], np.float32)
TONGUE = np.array([150, 66, 72], np.float32)
TEETH = np.array([232, 226, 216], np.float32)


def _draw_interior(
    frame: np.ndarray, top: np.ndarray, bottom: np.ndarray, mouth_w: float, gap: float, lip_inside: np.ndarray
) -> None:
    """Fill the gap between the lips: dark red, darker inside, teeth once it is open enough.

    dlib places the inner-lip points 62 and 66 on this interior's edges, so it must be visible
    even when the mouth is barely open."""
    if gap < 0.75:
        return
    # Grown a little past the lip edges: the warp stretches the closed base's seam into a thin
    # band just outside the gap, which the interior has to cover.
    grow = min(0.25 * gap, 0.015 * mouth_w)
    polygon = np.concatenate([top - (0, grow), bottom[1:-1] + (0, grow)])
    x0, y0 = np.maximum(np.floor(polygon.min(0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(polygon.max(0)).astype(int) + 3
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    h, w = patch.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.6)[..., None] / np.float32(255)

    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    cx, cy = polygon.mean(0)
    half_w = max(np.ptp(polygon[:, 0]) / 2, 1)
    upper = np.interp(xs, top[:, 0], top[:, 1])
    lower = np.interp(xs, bottom[::-1, 0], bottom[::-1, 1])
    r = np.clip(np.hypot((xs - cx) / half_w, (ys - cy) / (gap / 2 + 1)), 0, 1)[..., None]
    colour = THROAT + (lip_inside - THROAT) * r**3
    # The tongue shows low in a wide mouth.
    tongue = np.clip((ys - (lower - 0.35 * gap)) / (0.2 * gap + 1), 0, 1) * np.clip(
        gap / (0.15 * mouth_w) - 1, 0, 1
    )
    colour += (TONGUE - colour) * (0.6 * tongue * np.clip(1 - np.abs(xs - cx) / half_w, 0, 1))[..., None]

    # The upper teeth: an arch under the upper lip once the lips part a little, shortest at the
    # corners, shaded darker towards their edge and the corners.
    show = float(np.clip((gap - 0.05 * mouth_w) / (0.05 * mouth_w), 0, 1))
    if show > 0:
        arch = np.sqrt(np.clip(1 - ((xs - cx) / (0.85 * half_w)) ** 2, 0, 1))
        height = min(0.3 * gap, 0.08 * mouth_w) * arch
        depth = ys - upper
        band = np.clip(height - depth + 0.5, 0, 1) * np.clip(depth + 1, 0, 1)
        shade = (0.72 + 0.28 * arch - 0.15 * np.clip(depth / (height + 1), 0, 1))[..., None]
        teeth = (show * band)[..., None]
        colour = colour * (1 - teeth) + TEETH * shade * teeth
    frame[y0:y1, x0:x1] = np.clip(patch * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
