"""`reenact adapt VIDEO --name NAME` (models/training/adapt.py): a bad clip is one line, exit 1, nothing
registered and nothing of the corpus touched; a good one is registered in paths.targets and renders with
`reenact render --target NAME`, on its own footage, with its own generator."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import simplejpeg
import torch
import yaml
from conftest import REAL_MEDIA, REAL_SPEECH
from helpers import ROOT, dvc_project_copy, reenact, reenact_here
from render_kit import Trained, ffmpeg, probe, write_voice

from models.artifacts import SHIPPED_BASE, CganArtifact
from models.errors import AdaptError
from models.rendering import render as render_stage
from models.training import adapt
from models.training.adapt import adapt_target, detail_weight
from models.training.targets import list_targets, read_target
from tasks.config.params_loader import load_params
from tasks.config.paths import PROJECT_ROOT, TARGET_RECORD, Paths
from tasks.config.progress import EVERY_ENV
from tasks.rows import rowkey
from tasks.rows.decode import iter_frames
from tasks.table.shards import read_frames


def corpus_digest(trained: Trained) -> dict[str, str]:
    """sha256 of every file of the corpus: raw videos, shards, artifacts."""
    folders = (trained.paths.raw, trained.paths.shards, trained.paths.artifacts)
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for d in folders for f in sorted(d.rglob("*"))
            if f.is_file()}


def project_options(trained: Trained, root: Path) -> list[str]:
    """A project at `root` (where targets go) whose corpus and models are `trained`'s."""
    p = trained.paths
    return ["--root", str(root), "--params", str(p.params), "--lstm", str(p.lstm), "--cgan", str(p.cgan),
            "--shards", str(p.shards), "--videos", str(p.videos)]


def one_line_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def missing(folder: Path) -> Path:
    return folder / "nowhere.mp4"


def text_file(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("a shopping list, not a video\n" * 20)
    return path


def one_second(folder: Path) -> Path:
    path = folder / "short.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", str(path))
    return path


def no_face(folder: Path) -> Path:
    path = folder / "pattern.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", str(path))
    return path


def silent(folder: Path) -> Path:
    path = folder / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=25:duration=4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.mark.parametrize(("make", "problem"), [
    (missing, "no such file"),
    (text_file, "not a readable media file"),
    (one_second, "1.0 s long; adapt needs at least 3 s"),
    (no_face, "a face in 0% of frames: no face found"),
    (silent, "has no audio stream"),
])
def test_a_bad_clip_is_one_line_and_registers_nothing(footage, tmp_path, make, problem, monkeypatch):
    """The clip that goes furthest (a face looked for in every frame) runs as a user runs it, `reenact` in
    a process of its own, so that nothing that process prints beside the error goes unseen; the others
    run the same command in this process (helpers.reenact_here): one line, exit status 1 all the same.
    Progress lines, which a run past 15 s gives (a busy machine's face search), are put off."""
    monkeypatch.setenv(EVERY_ENV, "3600")
    clip = make(tmp_path)
    before = corpus_digest(footage)
    project = project_options(footage, tmp_path / "p")
    done = (reenact if make is no_face else reenact_here)("adapt", str(clip), "--name", "me", *project,
                                                          cwd=tmp_path)
    line = one_line_error(done, str(clip), problem)
    if make is no_face:
        assert "at least 50% of frames" in line
    assert not Paths.at(tmp_path / "p").targets.exists(), "no targets folder, no staging folder left"
    assert corpus_digest(footage) == before


def test_a_name_that_cannot_be_registered_is_refused(footage, tmp_path):
    clip = footage.paths.videos / f"{footage.target}.mp4"
    paths = footage.paths.moved(targets=tmp_path / "targets")
    for name, problem in [("me too", "letters, digits"), (footage.target, "a video of the corpus")]:
        with pytest.raises(AdaptError, match=problem):
            adapt_target(clip, name, paths, footage.params)
    paths.target_dir("me").mkdir(parents=True)
    with pytest.raises(AdaptError, match="already a target"):
        adapt_target(clip, "me", paths, footage.params)
    with pytest.raises(AdaptError, match="lstm.pt: no such file"):
        adapt_target(clip, "you", paths.moved(lstm=tmp_path / "lstm.pt"), footage.params)


def test_adapt_registers_a_target_that_renders_on_its_own_footage(footage, tmp_path, monkeypatch, capsys):
    """A demo clip (2 s: adapt.min_seconds lowered for it) adapted through the CLI, then rendered with
    --target: the target's own frames, its own generator, the corpus left as it was."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((footage.paths.videos / f"{footage.target}.mp4").read_bytes())
    before = corpus_digest(footage)
    project = project_options(footage, tmp_path / "p")
    killed = Paths.at(tmp_path / "p").targets / ".me.0123456789ab.tmp"  # a killed run's staging folder
    (killed / "videos").mkdir(parents=True)
    done = reenact("adapt", str(clip), "--name", "me", "--seconds", "1", "--override", "adapt.min_seconds=1",
                   *project, cwd=tmp_path)  # a budget of 1 s: a few steps, all that is asserted of them
    assert done.returncode == 0, done.stderr
    assert "--target me" in done.stdout and "warning" not in done.stderr, "frontal footage: no warning"
    assert corpus_digest(footage) == before
    paths = Paths.at(tmp_path / "p")
    target = read_target(paths, "me")
    assert [t.name for t in list_targets(paths)] == ["me"]
    assert [p.name for p in paths.targets.iterdir()] == ["me"], "the killed run's folder is gone"
    assert target.frames == 60 and target.frames_with_face >= 30 and target.train_frames == 60
    assert target.steps >= 1 and target.adapt_seconds > 0 and target.source == str(clip)
    mine = target.paths
    assert sorted(p.name for p in target.folder.iterdir()) == ["cgan.pt", "lstm.pt", "shards", TARGET_RECORD,
                                                               "videos"]
    assert target.base == str(footage.paths.cgan.resolve()), "adapt.base: project, the tiny corpus's"
    assert mine.lstm.read_bytes() == footage.paths.lstm.read_bytes(), "renders of it keep its start's LSTM"
    assert target.video == mine.videos / "me.mp4" and target.video.read_bytes() == clip.read_bytes()
    assert read_frames(mine.shards, "me", ["frame"]).num_rows == 60
    tuned, corpus = CganArtifact.load(mine.cgan), CganArtifact.load(footage.paths.cgan)
    assert tuned.target_video == "me" and set(tuned.lips_stats) == set(corpus.lips_stats) | {"me"}
    assert "me" in reenact("targets", "--root", str(tmp_path / "p"), cwd=tmp_path).stdout

    speech = write_voice(tmp_path / "speech.wav", 1.0)
    done = reenact("render", "--audio", str(speech), "--out", str(tmp_path / "talk.mp4"), "--target", "me",
                   *project, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "on me (full)" in done.stdout
    streams = {s["codec_type"]: s for s in probe(tmp_path / "talk.mp4")["streams"]}
    first = next(iter_frames(clip, 30.0))
    assert (streams["video"]["width"], streams["video"]["height"]) == first.shape[1::-1]
    signed = reenact_here("verify", str(tmp_path / "talk.mp4"), cwd=tmp_path).stdout
    assert f"cgan_sha256          {hashlib.sha256(mine.cgan.read_bytes()).hexdigest()}" in signed, signed

    # The DVC stage render, told render.target_video: me, renders onto the adapted target too, saying its
    # progress into the log (here every 0.05 s, not 15).
    monkeypatch.setenv("REENACT_PROGRESS_SECONDS", "0.05")
    capsys.readouterr()
    render_stage.main([*project, "--override", "render.target_video=me"])
    assert "render demo.mp4: frames " in capsys.readouterr().out
    staged = reenact_here("verify", str(tmp_path / "p" / "renders" / "demo.mp4"), cwd=tmp_path).stdout
    assert "target_video         me" in staged, staged
    assert f"cgan_sha256          {hashlib.sha256(mine.cgan.read_bytes()).hexdigest()}" in staged, staged

    done = reenact_here("adapt", str(clip), "--name", "me", *project, cwd=tmp_path)
    one_line_error(done, "already a target", "--replace")


def test_train_fraction_fine_tunes_on_the_first_frames_only(footage, tmp_path):
    clip = footage.paths.videos / f"{footage.target}.mp4"
    paths = footage.paths.moved(targets=tmp_path / "targets")
    params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
        update={"min_seconds": 1.0, "epochs": 1})})
    calls = []
    target = adapt_target(clip, "held", paths, params, train_fraction=0.75,
                          progress=lambda phase, done, total, budget=None: calls.append((phase, done, total,
                                                                                         budget)))
    assert target.train_frames == 45 and target.frames == 60
    assert {phase for phase, *_ in calls} == {"preprocess", "fine-tune"}
    assert all(0 < done <= total for _, done, total, _ in calls)
    tuning = [call for call in calls if call[0] == "fine-tune"]
    assert len({total for _, _, total, _ in tuning}) == 1, "the steps the epochs plan: a fixed total"
    assert all(0 < budget <= params.adapt.seconds for *_, budget in tuning), "within adapt.seconds"
    assert calls[-1][:3] == ("fine-tune", target.steps, target.steps), "the last call fills the bar"
    assert ("preprocess", 60, 60, None) in calls
    tuned = CganArtifact.load(target.paths.cgan)
    face_in_first = read_frames(target.paths.shards, "held", ["face_found"]).column("face_found")
    assert tuned.lips_stats["held"].frames == sum(face_in_first.to_pylist()[:45])
    assert json.loads((target.folder / TARGET_RECORD).read_text())["train_frames"] == 45
    assert read_target(paths, "held") == target


def test_a_target_adapted_at_256_px_grows_the_128_px_generator_and_renders(footage, tmp_path):
    """adapt.face_size 256 from a 128 px corpus generator: the clip's crops are made at 256, the generator
    is grown to paint them (its U-Net kept, a full-size level added) and fine-tuned, and a render of the
    target pastes 256 px faces into its footage."""
    clip = footage.paths.videos / f"{footage.target}.mp4"
    paths = footage.paths.moved(targets=Paths.at(tmp_path / "p").targets)
    params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
        update={"min_seconds": 1.0, "epochs": 1, "face_size": 256})})
    corpus = CganArtifact.load(footage.paths.cgan)
    target = adapt_target(clip, "big", paths, params)
    assert corpus.face_size == 128 and target.face_size == 256
    assert json.loads((target.folder / TARGET_RECORD).read_text())["face_size"] == 256
    tuned = CganArtifact.load(target.paths.cgan)
    assert tuned.face_size == 256 and (tuned.hparams["size"], tuned.hparams["inner"]) == (256, 128)
    assert set(tuned.references) == {"big"} and tuned.references["big"].crops.shape[1:] == (256, 256, 3)
    assert set(corpus.state_dict) < set(tuned.state_dict)
    faces = read_frames(target.paths.shards, "big", ["face"]).column("face")
    assert simplejpeg.decode_jpeg_header(faces[0].as_py())[:2] == (256, 256)

    speech = write_voice(tmp_path / "speech.wav", 1.0)
    done = reenact_here("render", "--audio", str(speech), "--out", str(tmp_path / "talk.mp4"), "--target",
                        "big", *project_options(footage, tmp_path / "p"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    streams = {s["codec_type"]: s for s in probe(tmp_path / "talk.mp4")["streams"]}
    first = next(iter_frames(clip, 30.0))
    assert (streams["video"]["width"], streams["video"]["height"]) == first.shape[1::-1]


def test_adapt_sizes_a_targets_crops_by_its_face_and_what_its_start_can_paint(footage, tmp_path):
    """adapt.face_size auto: 256 px crops for a face wider than LARGE_FACE_PX in the footage, else
    preprocess.face_size; a forced size is kept whatever the face; a size the generator adapt starts from
    cannot paint (smaller than its own; bigger, for the paper's noise generator) is one line."""
    clip = footage.paths.videos / f"{footage.target}.mp4"
    start = CganArtifact.load(footage.paths.cgan)

    def sized(size, generator=start):
        params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
            update={"face_size": size})})
        return adapt.face_size_for(clip, params, generator)

    width = adapt.auto_face_size(clip, footage.params.preprocess)[1]
    assert width > 0 and sized("auto") == (256 if width > adapt.LARGE_FACE_PX else 128)
    assert sized(128) == 128 and sized(256) == 256
    noise = dataclasses.replace(start, condition="noise")
    assert sized("auto", noise) == 128
    with pytest.raises(AdaptError, match="adapt.face_size 256: .* 128 px crops .*noise"):
        sized(256, noise)
    with pytest.raises(AdaptError, match="adapt.face_size 128: .* 256 px crops"):
        sized(128, dataclasses.replace(start, face_size=256))
    for name, expected in (("anchor_20s", 256), ("obama_30s", 128)):  # faces ~225 and ~112 px wide
        real = REAL_MEDIA / f"{name}.mp4"
        if real.exists():
            assert adapt.auto_face_size(real, footage.params.preprocess)[0] == expected, name


def test_a_256_px_face_is_fine_tuned_with_its_own_detail_weight():
    overrides = {"adapt.detail_weight": 150, "adapt.detail_weight_256": 900}
    params = load_params(PROJECT_ROOT / "params.yaml", overrides)
    assert detail_weight(params) == 150
    assert detail_weight(params.model_copy(update={
        "preprocess": params.preprocess.model_copy(update={"face_size": 256})})) == 900


def test_adapt_ema_keeps_the_average_of_the_steps_and_mouth_weight_reaches_the_loss(footage, tmp_path):
    """adapt.ema > 0 keeps the moving average of the generator's weights over the steps: the same steps
    as without it, but weights nearer the corpus generator's they started from. adapt.mouth_weight, not
    cgan.mouth_weight, weighs the fine-tuning's L1: the same steps with another weight end elsewhere."""
    clip = footage.paths.videos / f"{footage.target}.mp4"
    corpus = CganArtifact.load(footage.paths.cgan).state_dict
    moved, tuned = {}, {}
    for ema, mouth in ((0.0, 1.0), (0.9, 1.0), (0.0, 4.0)):
        paths = footage.paths.moved(targets=tmp_path / f"targets_{ema}_{mouth}")
        params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
            update={"min_seconds": 1.0, "epochs": 3, "ema": ema, "mouth_weight": mouth})})
        target = adapt_target(clip, "me", paths, params)
        state = tuned[ema, mouth] = CganArtifact.load(target.paths.cgan).state_dict
        moved[ema, mouth] = sum(float((state[k].float() - corpus[k].float()).norm()) for k in corpus)
        assert target.steps >= 3
    assert 0 < moved[0.9, 1.0] < moved[0.0, 1.0], moved
    assert any(not torch.equal(tuned[0.0, 1.0][k], tuned[0.0, 4.0][k]) for k in corpus)


def test_the_adapt_stage_adapts_each_listed_target_with_the_row_making_code():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["adapt"]
    assert stage["foreach"] == "${adapt.targets}"
    assert stage["do"]["cmd"].endswith("adapt ${item.video} --name ${item.name} --replace")
    assert stage["do"]["outs"] == ["targets/${item.name}"]
    code = {f"tasks/{path.relative_to(rowkey.PACKAGE_DIR)}" for path in rowkey.row_code_files()}
    wanted = code | {"${item.video}", "artifacts/cgan.pt", "models/training/adapt.py"}
    assert wanted <= set(stage["do"]["deps"])


@pytest.mark.slow
def test_dvc_adapts_each_target_the_params_list(footage, tmp_path):
    repo = dvc_project_copy(tmp_path / "repo", extra=("models",))
    shutil.copytree(footage.paths.artifacts, repo / "artifacts")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((footage.paths.videos / f"{footage.target}.mp4").read_bytes())
    params = footage.params.model_dump(mode="json")
    params["adapt"].update(min_seconds=1.0, seconds=3.0, epochs=1,
                           targets=[{"name": "me", "video": str(clip)}])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}  # the copy has no .venv: bin/python takes the active one
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "--single-item", "adapt@0"],
                          cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'adapt@0'" in done.stdout
    target = read_target(Paths.at(repo), "me")
    assert target.frames == 60 and target.source == str(clip)
    assert (repo / "artifacts/cgan.pt").read_bytes() == footage.paths.cgan.read_bytes()


@pytest.mark.slow
@pytest.mark.real_media
def test_a_real_person_adapts_and_speaks_another_voice(footage, tmp_path):
    """A real 5 s talking head (25 fps) adapted through the CLI in a short budget, then another speaker's
    speech rendered onto it with --target: the one-command path of the README."""
    clip = REAL_MEDIA / "may_5s.mp4"
    if not clip.exists() or not REAL_SPEECH.exists():
        pytest.skip(f"{REAL_MEDIA} absent")
    project = project_options(footage, tmp_path / "p")
    done = reenact("adapt", str(clip), "--name", "may", "--seconds", "20",
                   "--override", "adapt.face_size=auto", *project, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    target = read_target(Paths.at(tmp_path / "p"), "may")
    assert abs(target.frames - 150) <= 2 and target.frames_with_face >= 0.9 * target.frames
    assert target.face_size == 256, "her face is ~240 px wide: painted at 256 px (adapt.face_size auto)"
    done = reenact("render", "--audio", str(REAL_SPEECH), "--out", str(tmp_path / "talk.mp4"),
                   "--target", "may", *project, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "on may (full)" in done.stdout
    video = next(s for s in probe(tmp_path / "talk.mp4")["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (512, 512)


def test_a_project_with_no_models_adapts_from_the_shipped_base(footage, tmp_path):
    """adapt.base: shipped (the default) starts from the real-faces base in the package, so a project
    with no models of its own (a fresh clone) adapts a person and renders them: the target carries the
    base's LSTM, its generator knows the base's people, and the render is signed with both."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((footage.paths.videos / f"{footage.target}.mp4").read_bytes())
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    done = reenact("adapt", str(clip), "--name", "me", "--seconds", "1", "--override", "adapt.min_seconds=1",
                   "--root", str(root), cwd=tmp_path)  # 1 s: at least a step; what is asserted is its start
    assert done.returncode == 0, done.stderr
    target = read_target(Paths.at(root), "me")
    assert target.base == "shipped"
    assert target.paths.lstm.read_bytes() == (SHIPPED_BASE / "lstm.pt").read_bytes()
    base = CganArtifact.load(SHIPPED_BASE / "cgan.pt")
    tuned = CganArtifact.load(target.paths.cgan)
    assert set(tuned.lips_stats) == set(base.lips_stats) | {"me"} and tuned.condition == base.condition
    listed = reenact("targets", "--root", str(root), cwd=tmp_path).stdout
    base_sha256 = hashlib.sha256((SHIPPED_BASE / "cgan.pt").read_bytes()).hexdigest()
    assert f"base: shipped (sha256 {base_sha256[:12]}, trained on {len(base.lips_stats)} videos)" in listed

    speech = write_voice(tmp_path / "speech.wav", 1.0)
    done = reenact("render", "--audio", str(speech), "--out", str(tmp_path / "talk.mp4"), "--target", "me",
                   "--root", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    signed = reenact("verify", str(tmp_path / "talk.mp4"), cwd=tmp_path).stdout
    lstm_sha256 = hashlib.sha256(target.paths.lstm.read_bytes()).hexdigest()
    assert f"lstm_sha256          {lstm_sha256}" in signed, signed


def test_a_missing_shipped_base_is_one_line_naming_it(footage, tmp_path, monkeypatch):
    monkeypatch.setattr(adapt, "SHIPPED_BASE", tmp_path / "no-base")
    params = footage.params.model_copy(update={"adapt": footage.params.adapt.model_copy(
        update={"base": "shipped"})})
    with pytest.raises(AdaptError, match=r"no-base/cgan.pt: no such file; .*`make base`"):
        adapt_target(footage.paths.videos / f"{footage.target}.mp4", "me",
                     footage.paths.moved(targets=tmp_path / "targets"), params)
    assert not (tmp_path / "targets").exists()
