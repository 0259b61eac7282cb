"""The real-faces base that ships in models/base/ (ARCHITECTURE.md, The shipped base): data/sources/base.txt
(the real fixtures beside the project whose licences allow the weights to be shared) built as a corpus
(flows/corpus.py) into .cache/base, its LSTM and frame generator copied, with a model card, into
models/base/. `python -m flows.corpus base` (what `dvc repro base` runs) rebuilds it all; `python -m
flows.corpus base-lstm` retrains the LSTM alone. `reenact adapt` starts from it (adapt.base: shipped).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from flows.corpus import BASE_LSTM_WORK, BASE_WORK, ROWS, TRAINING, build_corpus
from models.artifacts import SHIPPED_BASE, CganArtifact, LstmArtifact
from tasks.config.files import atomic_path
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, Paths, require_real_fixtures

BASE_SOURCES = PROJECT_ROOT / "data" / "sources" / "base.txt"
# The base is a corpus generator (no finetune epochs: it is the start of every adaptation, not one
# person's), trained on every person: the last 20 % of each clip is its validation.
BASE_OVERRIDES: dict[str, Any] = {"cgan.epochs": 4, "cgan.finetune_epochs": 0, "split.by": "time"}


def fixtures_dir(name: str) -> Path:
    """The fixtures folder a listed clip lies in (the folder above a grid/ or vox/ subfolder)."""
    path = Path(name)
    return path.parents[1] if path.parent.name in ("grid", "vox") else path.parent


def _licences(names: list[str], fixtures: Path) -> dict[str, str]:
    """Each clip's licence as SOURCES.md beside the fixtures gives it (the parenthesis of its row)."""
    rows = (fixtures / "SOURCES.md").read_text().splitlines()
    found = {}
    for name in names:
        path = Path(name)
        # a clip's own row names it in backticks; one in a subfolder (grid/, vox/) is named by a glob
        key = f"`{path.parent.name}/*" if path.parent != fixtures_dir(name) else f"`{path.name}`"
        row = next((r for r in rows if r.startswith("|") and key in r), "")
        licence = re.findall(r"\(([A-Za-z0-9.\-]+)[;)]", row)
        found[name] = licence[0] if licence else "unknown"
    return found


def base_licences() -> dict[str, str]:
    """Each clip of data/sources/base.txt with its licence; SystemExit when one does not allow sharing
    weights (non-commercial or unknown) or the fixtures are missing."""
    fixtures = require_real_fixtures()
    listed = [line.strip() for line in BASE_SOURCES.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    licences = _licences(listed, fixtures)
    refused = {name: lic for name, lic in licences.items() if "NC" in lic or lic == "unknown"}
    if refused:
        raise SystemExit(f"{BASE_SOURCES}: licence does not allow sharing weights: {refused}")
    return licences


def build_base(work: Path = BASE_WORK, into: Path = SHIPPED_BASE) -> Path:
    """The shipped base rebuilt from the real fixtures: models/base/{lstm.pt, cgan.pt, MODEL_CARD.md}."""
    licences = base_licences()
    paths = build_corpus(work, BASE_SOURCES, BASE_OVERRIDES)
    export_base(paths, licences, into)
    return refresh_lstm_card(paths, into)


def build_base_lstm(work: Path = BASE_LSTM_WORK, into: Path = SHIPPED_BASE) -> Path:
    """The shipped LSTM alone retrained, as the base build trains it (the same clips, the same overrides,
    the train_lstm stage on the frame table made by the ROWS stages), the shipped generator kept:
    models/base/lstm.pt and the model card's LSTM section replaced. A change to how the LSTM learns
    (params.yaml's lstm section, its code) ships without the hour the generator takes on 2 cores."""
    base_licences()
    rows = build_corpus(work / "rows", BASE_SOURCES, BASE_OVERRIDES, stages=ROWS)
    trained = build_corpus(work / "lstm", BASE_SOURCES, BASE_OVERRIDES, stages=TRAINING[:1], rows=rows)
    with atomic_path(Path(into) / "lstm.pt") as staging:
        shutil.copy2(trained.lstm, staging)
    return refresh_lstm_card(trained, into, alone=True)


LSTM_CARD = """## The LSTM

`lstm.pt` as the base build trains it (`python -m flows.corpus base-lstm` retrains it alone): the
clips above, the last 20 % of each clip held out, hearing {heard}; params.yaml's lstm section:

```yaml
{used}```

On the held-out 20 % of every clip, the lips it asks for (the linear map's share mixed in), placed on each
speaker's own mean mouth (`lstm.targets: {targets}`; `baseline_*`: the speaker's mean mouth, whatever the
speech):

| metric | value |
| --- | --- |
{figures}

`shape_gain`: how much of the lips' motion beside the opening a render keeps (the opening is kept whole):
what models of the same clips that never heard a clip earned on it (models/training/shape.py). How it
does on people it never heard is measured by `python -m evals.speech` (docs/results.md).{alone}
"""
ALONE = """ This LSTM
was retrained after the generator (`make base-lstm`): the Params and Held-out figures above are of the
whole build, the LSTM it had then included."""


def heard_text(artifact: LstmArtifact) -> str:
    """What the artifact hears, in words: its feature layout's parts, and who hears Whisper's windows."""
    layout = artifact.feature_layout
    phones = sum(name.startswith("phone_") for name in layout)
    words = sum(name.startswith("word_") for name in layout)
    states = sum(name.startswith("whisper_") for name in layout)
    grouped = (", each summed into the groups that look alike on the lips (`lstm.phone_classes: visemes`)"
               if phones + words and artifact.phone_classes == "visemes" else "")
    parts = [f"{len(layout) - phones - words - states} MFCC and loudness",
             f"{phones} PocketSphinx phone shares (`preprocess.phones`)" if phones else "",
             f"{words} shares of the phones of the words it hears (`preprocess.words`)" if words else ""]
    heard = f"{len(layout)} audio features per frame ({', '.join(p for p in parts if p)}{grouped}"
    if states and "whisper_window_0" in layout:
        heard += (f", and Whisper tiny.en's {states} encoder states of 2-s windows "
                  "(`preprocess.whisper: window`), which the linear map alone hears")
    elif states:
        heard += f", and Whisper tiny.en's {states} encoder states of 30-s blocks (`preprocess.whisper`)"
    heard += ")"
    if artifact.linear is not None:
        heard += (f"; {artifact.linear.share:g} of the lips it asks for are a linear map's of all of them "
                  "(`lstm.linear_share`, models/training/linear.py)")
    return heard


def refresh_lstm_card(paths: Paths, into: Path = SHIPPED_BASE, alone: bool = False) -> Path:
    """The model card's LSTM section (LSTM_CARD) written anew from the training run at `paths` (`alone`:
    retrained after the generator, which the card's other sections describe)."""
    params = load_params(paths.params)
    metrics = json.loads((paths.dvclive / "lstm" / "metrics.json").read_text())
    keys = ("best_val_loss", "baseline_val_loss", "lmd_px", "baseline_lmd_px", "mouth_open_r", "best_epoch",
            "shape_gain")
    figures = "\n".join(f"| `{key}` | {metrics[key]:.4g} |" for key in keys if key in metrics)
    heard = heard_text(LstmArtifact.load(paths.lstm))
    section = LSTM_CARD.format(used=yaml.safe_dump(params.lstm.model_dump(mode="json"), sort_keys=False),
                               targets=params.lstm.targets, figures=figures, alone=ALONE if alone else "",
                               heard=heard)
    card_file = Path(into) / "MODEL_CARD.md"
    card = card_file.read_text()
    head, found, tail = card.partition("## The LSTM\n")
    rest = tail[tail.find("\n## ") + 1:] if found and "\n## " in tail else ""
    licences = head.rfind("## Licences")
    if not found and licences >= 0:  # before the licences, the card's last section
        head, rest = head[:licences], head[licences:]
    card_file.write_text(head + section + "\n" + rest)
    return Path(into)


def export_base(paths: Paths, licences: dict[str, str], into: Path = SHIPPED_BASE) -> Path:
    """The base corpus at `paths` as the package ships it: its LSTM, its generator without the reference
    crops it keeps of each training video (faces of the footage, which is never shipped; adapt makes the
    target's own), and the model card."""
    generator = CganArtifact.load(paths.cgan)
    with atomic_path(Path(into)) as staging:
        staging.mkdir(parents=True)
        shutil.copy2(paths.lstm, staging / "lstm.pt")
        dataclasses.replace(generator, references={}).save(staging / "cgan.pt")
        (staging / "MODEL_CARD.md").write_text(model_card(paths, licences))
    return Path(into)


CARD = """# The real-faces base (models/base/)

What `reenact adapt` starts from (`adapt.base: shipped`): `lstm.pt` (speech -> 8 lip points, the
paper's BiLSTM) and `cgan.pt` (the frame-conditioned U-Net that paints a lower face from a reference
crop and the lips). Written by `make base` (the frozen DVC stage base, flows/corpus.py) from the real
fixtures beside the project; data/sources/base.txt lists the clips. Do not edit by hand.

## Intended use

A start for fine-tuning on one consenting person's footage (`reenact adapt`), whose renders are signed
and watermarked as synthetic. It is no one's face: it paints the person of the reference crop it is given.

## Data

{clips} clips, {frames} frames at {fps} fps. Every clip's licence allows sharing weights trained on it:
the non-commercial ones are left out, and so are the four clips adaptation is measured on (anchor_20s,
speaker_15s, may_5s, map_5s), so that no measured person is in the base. No footage is shipped: the
generator keeps no reference crops of these clips (`adapt` makes the target's own).

| clip | frames | with a face | licence |
| --- | --- | --- | --- |
{rows}

## Params

The project's params.yaml at build time with {overrides}:

```yaml
{used}```

## Held-out figures

`python -m models.evaluation.evaluate` on the base's own validation frames (the last 20 % of every clip,
never trained on); `baseline_*` are what the evaluation compares against (ARCHITECTURE.md, Evaluation).

| metric | value |
| --- | --- |
{figures}

## Licences

The weights are shared under the licences of the clips above ({licences}); credit goes to the
repositories that published each clip.
"""


def model_card(paths: Paths, licences: dict[str, str]) -> str:
    """MODEL_CARD.md of the base built at `paths`: its data, params, held-out figures and licences."""
    import pyarrow.parquet as pq

    params = load_params(paths.params)
    videos = {row["video_id"]: row for row in pq.read_table(paths.videos_table).to_pylist()}
    rows = []
    for name, licence in licences.items():
        row = videos.get(Path(name).stem, {})
        shown = Path(name).relative_to(fixtures_dir(name)).as_posix()
        rows.append(f"| `{shown}` | {row.get('frames', 0)} | {row.get('frames_with_face', 0)} | {licence} |")
    metrics = json.loads(paths.metrics.read_text())
    figures = [f"| `{key}` | {value:.4g} |" for key, value in sorted(metrics.items())
               if isinstance(value, int | float) and not isinstance(value, bool)]
    used = yaml.safe_dump(params.model_dump(mode="json", include={"preprocess", "lstm", "cgan", "split"}),
                          sort_keys=False)
    return CARD.format(
        clips=len(licences), frames=sum(r.get("frames", 0) for r in videos.values()),
        fps=params.preprocess.fps,
        rows="\n".join(rows), overrides=", ".join(f"`{k}={v}`" for k, v in BASE_OVERRIDES.items()),
        used=used, figures="\n".join(figures), licences=", ".join(sorted(set(licences.values()))),
    )
