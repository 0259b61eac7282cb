"""The real-faces corpus the evaluations adapt from and paint with (evals/realface.py, evals/figures/):
data/sources/real_faces.txt, 14 people of the real fixtures (tasks/config/paths.py: REAL_FIXTURES), none
of the four clips evals/realface.py measures. Built once into WORK (.cache/realface) by flows/corpus.py's
stages, then kept while its stamp matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.corpus import build_corpus
from tasks.config.paths import PROJECT_ROOT, Paths, require_real_fixtures

# Both generators train for these epochs on every video, no finetune epochs (the corpus generator is the
# start of every adaptation, not one person's); the noise one (noise_) on the frame corpus's rows.
SOURCES = PROJECT_ROOT / "data" / "sources" / "real_faces.txt"
WORK = PROJECT_ROOT / ".cache" / "realface"
CORPUS: dict[str, dict[str, Any]] = {
    "frame": {"cgan.condition": "frame", "cgan.epochs": 12, "cgan.finetune_epochs": 0},
    "noise": {"cgan.condition": "noise", "cgan.epochs": 10, "cgan.finetune_epochs": 0},
}


def real_faces_corpus(work: Path = WORK) -> dict[str, Paths]:
    """{"frame": the real-faces corpus (its LSTM and frame generator), "noise": the paper's generator trained
    on its rows}, in work/frame and work/noise, each built by flows/corpus.py unless its stamp matches."""
    require_real_fixtures()
    frame = build_corpus(Path(work) / "frame", SOURCES, CORPUS["frame"])
    noise = build_corpus(Path(work) / "noise", SOURCES, CORPUS["noise"],
                         stages=("models.training.train_cgan",), rows=frame)
    return {"frame": frame, "noise": noise}
