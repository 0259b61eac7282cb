"""What evaluate writes and prints besides paths.metrics: the sync clip's mouth-opening
plot and CSV, the eval grid, and the table of each metric beside its baselines."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

BASELINES = ("baseline_mean", "baseline_random", "baseline_paste", "baseline_nearest")


def counted(verdict: dict[str, bool]) -> dict[str, bool]:
    """The comparisons that say something: against the pasted box only `seam` does. Its outside_psnr is
    over other pixels (outside the box, not the mask) and its full_lmd_px reads a whole generated face;
    both are reported beside the composite's, as references."""
    return {
        key: won
        for key, won in verdict.items()
        if not key.startswith("baseline_paste/") or key == "baseline_paste/seam"
    }


def write_plots(out: Path, grid: np.ndarray, clip: dict | None) -> None:
    Image.fromarray(grid).save(out / "eval_grid.png")
    if clip is None:
        return
    columns = ("true", "predicted", "generated")
    with open(out / "mouth_opening.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("frame", *columns))
        for frame in range(len(clip["true"])):
            writer.writerow(
                (frame, *("" if np.isnan(clip[c][frame]) else f"{clip[c][frame]:.5f}" for c in columns))
            )

    import matplotlib

    matplotlib.use("Agg")  # no display on a CI runner or a DVC stage
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 3.5))
    for column in columns:
        axis.plot(clip[column], label=column, linewidth=1.2)
    axis.set_xlabel("frame")
    axis.set_ylabel("mouth opening / crop height")
    axis.set_title(f"sync clip: speech of {clip['video_id']} on the target face")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "mouth_opening.png", dpi=100)
    plt.close(figure)


def print_table(metrics: dict, verdict: dict[str, bool]) -> None:
    def cell(value) -> str:
        return "null" if value is None else f"{value:.4f}"

    names = [
        "lstm/val_loss",
        "lmd_px",
        "mouth_open_r",
        "gen_ssim",
        "gen_psnr",
        "gen_lmd_px",
        "gen_face_found",
        "sync_r",
        "full_lmd_px",
        "full_face_found",
        "seam",
        "outside_psnr",
        "mouth_psnr",
        "mouth_ssim",
        "flicker",
    ]
    header = "".join(f"{name:>10}" for name in ("model", "mean", "random", "paste", "nearest"))
    print(f"{'metric':<16}{header}  beats baselines")
    for name in names:
        wins = [
            f"{b.split('_')[1]}: {'yes' if verdict[f'{b}/{name}'] else 'NO'}"
            for b in BASELINES
            if f"{b}/{name}" in verdict
        ]
        print(
            f"{name:<16}{cell(metrics.get(name)):>10}"
            + "".join(f"{cell(metrics.get(f'{b}/{name}')):>10}" for b in BASELINES)
            + "  "
            + ", ".join(wins)
        )
    print(
        f"dlib's floor on real frames: real_lmd_px {cell(metrics['real_lmd_px'])}, "
        f"face found {cell(metrics['real_face_found'])}"
    )
    print(
        "the mean training face for every frame (a reference, not a baseline): "
        + ", ".join(
            f"{k.split('/')[1]} {cell(metrics.get(k))}"
            for k in ("mean_face/gen_ssim", "mean_face/gen_psnr", "mean_face/gen_lmd_px")
        )
    )
    lost = [key for key, won in verdict.items() if not won]
    print(
        "beats_baselines: "
        + (
            "every model metric beats its baselines"
            if not lost
            else f"{len(lost)} of {len(verdict)} comparisons lost: {', '.join(lost)}"
        )
    )
