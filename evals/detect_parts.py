"""What gives a painted lower face away: detectability (models/evaluation/detectability.py) cut apart.

    python -m evals.detect_parts CLIP.npz [--method ours]

CLIP.npz is what `python -m evals.realface CLIP --keep-arrays` writes beside its sheet: the held-out real
crops, each method's composites, the soft masks and the frame numbers. One JSON line per test, each the
block-cross-validated accuracy of telling the real lower face from the method's:
- by the features' kind: `edges` (each cell's gradient strength), `directions` (each cell's share of it per
  direction), `bands` (each cell's band-pass energies; `band_0.7` its finest alone), `colour` (the mean
  CIELAB over the mask), `colour_spread` (its std);
- by where: the rows of cells over the lower face's box, top (the nose's base and upper lip), middle (the
  mouth), bottom (the chin);
- and beside each, the same test of the real frames against themselves with the real lower face of the
  frame k places later blended in (`neighbour_k`, k 1, 2, 4), and re-encoded as JPEG at quality 90 (as the
  frame table stores every crop): the scale to read the method's figure on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import simplejpeg

from models.evaluation.detectability import BANDS, GRID, ORIENTATIONS, accuracy, features_of, neighbours

PER_CELL = 1 + ORIENTATIONS + len(BANDS)  # lower_face_features: per cell strength, directions, bands
CELLS = GRID[0] * GRID[1]
NEIGHBOURS = (1, 2, 4)


def columns() -> dict[str, list[int]]:
    """The feature columns of each part (lower_face_features' order)."""
    cell = [range(c * PER_CELL, (c + 1) * PER_CELL) for c in range(CELLS)]
    parts = {
        "all": list(range(CELLS * PER_CELL + 6)),
        "edges": [c * PER_CELL for c in range(CELLS)],
        "directions": [c * PER_CELL + 1 + o for c in range(CELLS) for o in range(ORIENTATIONS)],
        "bands": [c * PER_CELL + 1 + ORIENTATIONS + b for c in range(CELLS) for b in range(len(BANDS))],
        f"band_{BANDS[0]}": [c * PER_CELL + 1 + ORIENTATIONS for c in range(CELLS)],
        "colour": [CELLS * PER_CELL + k for k in range(3)],
        "colour_spread": [CELLS * PER_CELL + 3 + k for k in range(3)],
    }
    for row, name in enumerate(("top", "middle", "bottom")[: GRID[0]]):
        parts[f"cells_{name}"] = [i for c in range(row * GRID[1], (row + 1) * GRID[1]) for i in cell[c]]
    return parts


def jpeg(images: np.ndarray, quality: int = 90) -> np.ndarray:
    return np.stack([simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(np.ascontiguousarray(image),
                                                                    quality=quality)) for image in images])


def parts(arrays: dict[str, np.ndarray], method: str) -> list[dict]:
    real, masks, frames = arrays["real"], arrays["masks"], arrays["frames"]
    if method not in arrays:
        methods = sorted(set(arrays) - {"real", "masks", "frames"})
        raise SystemExit(f"no composites of {method!r} in the arrays; there are: {', '.join(methods)}")
    real_features = features_of(real, masks)
    others = {method: features_of(arrays[method], masks), "jpeg_90": features_of(jpeg(real), masks)}
    others |= {f"neighbour_{k}": features_of(neighbours(real, masks, k), masks) for k in NEIGHBOURS}
    return [{"part": part, **{name: round(accuracy(real_features[:, cols], features[:, cols], frames), 3)
                              for name, features in others.items()}}
            for part, cols in columns().items()]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m evals.detect_parts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("arrays", type=Path, help="CLIP.npz from evals.realface --keep-arrays")
    parser.add_argument("--method", default="ours", help="whose composites (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.arrays.is_file():
        raise SystemExit(f"{args.arrays}: no such file (`python -m evals.realface CLIP --keep-arrays` "
                         "writes it)")
    with np.load(args.arrays) as saved:
        rows = parts({name: saved[name] for name in saved.files}, args.method)
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
