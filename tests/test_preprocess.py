"""The per-video unit (tasks/ingest/video.py) and the preprocess flow, on real files made by ffmpeg."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import simplejpeg
from conftest import REAL_MEDIA
from helpers import LogLines, dvc_project_copy

from tasks.config.params import PreprocessParams, rows_digest
from tasks.config.params_loader import load_params
from tasks.ingest.video import VideoError, face_warning, preprocess_video, process_video
from tasks.rows import rowkey
from tasks.rows.decode import DecodeError, iter_frames
from tasks.rows.features import LOG_ENERGY  # the loudness: next to last, with or without phones
from tasks.table import shards

PARAMS = PreprocessParams()
ROOT = Path(__file__).resolve().parents[1]
BURST_AT = 1.0  # seconds: a 10 ms 1 kHz burst centred here, silence elsewhere


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def make_video(
    path: Path,
    seconds: float = 2.0,
    fps: int = 25,
    audio: bool = True,
    size: str = "160x120",
    faststart: bool = False,
) -> Path:
    """testsrc (no face) with silence and one short burst at BURST_AT."""
    args = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        burst = rf"if(between(t\,{BURST_AT - 0.005}\,{BURST_AT + 0.005})\,sin(2*PI*1000*t)\,0)"
        args += ["-f", "lavfi", "-i", f"aevalsrc={burst}:s=16000:d={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(fps)]
    if faststart:
        args += ["-movflags", "+faststart"]
    ffmpeg(*args, str(path))
    return path


def make_truncated(path: Path) -> Path:
    """An mp4 cut in the middle of its media data, as an interrupted download leaves it."""
    whole = make_video(path.with_name("whole.mp4"), seconds=3.0, faststart=True)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    whole.unlink()
    return path


def make_audio_only(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "tone.mp4")
    make_video(folder / "tone30.mp4", fps=30)
    make_video(folder / "silent.mp4", audio=False)
    make_truncated(folder / "truncated.mp4")
    make_audio_only(folder / "audio_only.mp4")
    (folder / "notes.mp4").write_text("these are not the frames you are looking for\n")
    return folder


def read_partition(root: Path, video_id: str) -> pd.DataFrame:
    return pq.ParquetDataset(shards.partition_dir(root, video_id)).read().to_pandas()


@pytest.mark.parametrize(("source", "fps"), [("tone.mp4", 30.0), ("tone30.mp4", 25.0), ("tone.mp4", 25.0)])
def test_one_row_per_frame_at_the_pipeline_fps(media, tmp_path, source, fps):
    params = PARAMS.model_copy(update={"fps": fps})
    row = process_video(media / source, tmp_path, params)
    frames = read_partition(tmp_path, Path(source).stem)
    decoded = sum(1 for _ in iter_frames(media / source, fps))
    assert row["status"] == "ok" and row["frames"] == len(frames) == decoded == round(2.0 * fps)
    assert frames["frame"].tolist() == list(range(decoded))
    assert np.allclose(frames["time"], frames["frame"] / fps) and (np.diff(frames["time"]) > 0).all()
    # Audio is aligned by timestamps through decoding: the burst lands in the frame showing its time.
    energy = np.stack(frames["audio"])[:, LOG_ENERGY]
    assert int(np.argmax(energy)) == round(BURST_AT * fps)


def test_video_without_a_face_keeps_every_frame(media, tmp_path):
    row = process_video(media / "tone.mp4", tmp_path, PARAMS)
    frames = read_partition(tmp_path, "tone")
    assert row["frames_with_face"] == 0 and len(frames) == row["frames"] == 60
    assert not frames["face_found"].any()
    assert np.isnan(np.stack(frames["landmarks"])).all() and np.isnan(np.stack(frames["lips"])).all()
    assert np.isfinite(np.stack(frames["audio"])).all() and np.isfinite(np.stack(frames["crop"])).all()
    face = simplejpeg.decode_jpeg(frames["face"].iloc[0])
    assert face.shape == (128, 128, 3)
    assert row["warning"].startswith("a face in 0% of frames: no face found")
    assert process_video(media / "tone.mp4", tmp_path, PARAMS)["warning"] == row["warning"]  # skipped: same


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("truncated.mp4", DecodeError, "video decoding failed"),
        ("silent.mp4", VideoError, "has no audio stream"),
        ("audio_only.mp4", VideoError, "has no video stream"),
        ("notes.mp4", DecodeError, "not a readable media file"),
    ],
)
def test_bad_inputs_raise_naming_the_file(media, tmp_path, name, error, message):
    with pytest.raises(error, match=message) as raised:
        process_video(media / name, tmp_path, PARAMS)
    assert str(media / name) in str(raised.value)
    # Nothing of it under a name a reader would find, and no temporary left behind.
    assert list(tmp_path.iterdir()) == []
    row = preprocess_video.fn(media / name, tmp_path, PARAMS)
    assert row["status"] == "failed" and message in row["error"] and row["video_id"] == Path(name).stem


def test_skip_when_current_rebuild_when_not(media, tmp_path):
    first = process_video(media / "tone.mp4", tmp_path, PARAMS)
    written = shards.part_files(tmp_path, "tone")[0].stat().st_mtime_ns
    again = process_video(media / "tone.mp4", tmp_path, PARAMS)
    assert again["status"] == "skipped"
    assert (again["frames"], again["sha256"]) == (first["frames"], first["sha256"])
    assert shards.part_files(tmp_path, "tone")[0].stat().st_mtime_ns == written
    # Runner settings change no row.
    runner = PARAMS.model_copy(update={"workers": 5, "task_runner": "processes"})
    assert process_video(media / "tone.mp4", tmp_path, runner)["status"] == "skipped"
    changed = PARAMS.model_copy(update={"jpeg_quality": 70})
    rebuilt = process_video(media / "tone.mp4", tmp_path, changed)
    assert rebuilt["status"] == "ok"
    meta = shards.read_metadata(shards.part_files(tmp_path, "tone")[0])
    assert meta["params_digest"] == rows_digest(changed) and meta["source_sha256"] == first["sha256"]
    assert meta["cache_key"] == rowkey.cache_key(changed)


def test_new_row_making_code_rebuilds(media, tmp_path, monkeypatch):
    assert process_video(media / "tone.mp4", tmp_path, PARAMS)["status"] == "ok"
    assert process_video(media / "tone.mp4", tmp_path, PARAMS)["status"] == "skipped"
    # What an edit of tasks/rows/align.py (or any module that makes rows) does to the key.
    monkeypatch.setattr(rowkey, "code_digest", lambda package_dir=None: "edited-align")
    assert process_video(media / "tone.mp4", tmp_path, PARAMS)["status"] == "ok"
    meta = shards.read_metadata(shards.part_files(tmp_path, "tone")[0])
    assert meta["cache_key"] == rowkey.cache_key(PARAMS)
    assert process_video(media / "tone.mp4", tmp_path, PARAMS)["status"] == "skipped"


def _reshaped(source: Path, out: Path, video_filter: str) -> Path:
    ffmpeg(
        "-i",
        str(source),
        "-vf",
        video_filter,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        "-c:a",
        "aac",
        str(out),
    )
    return out


@pytest.mark.real_media
@pytest.mark.parametrize(
    ("name", "video_filter", "share"),
    [
        # 512x512 squashed to 641x361: ffmpeg's scale keeps the picture's shape in the sample aspect
        # ratio (361:641), so the frames are decoded back to square pixels and the face is whole.
        ("squashed", "scale=641:361", 0.95),
        # The same pixels with the aspect flag lost: the faces themselves are squashed, and HOG is
        # shown them restretched by what the landmarks measure.
        ("squashed_unflagged", "scale=641:361,setsar=1", 0.95),
        # A speaker far away: the 512 px talking head in 80 px of a 640x360 wide shot (~40 px face box).
        ("wide", "scale=80:80,pad=640:360:300:80:color=gray", 0.5),
    ],
)
def test_faces_of_every_shape_and_size_with_default_params(real_clip, tmp_path, name, video_filter, share):
    video = _reshaped(real_clip, tmp_path / f"{name}.mp4", video_filter)
    row = process_video(video, tmp_path / "shards", PARAMS)
    assert row["status"] == "ok" and row["frames_with_face"] >= share * row["frames"], row
    assert row["warning"] == ""


@pytest.mark.real_media
def test_faces_too_small_are_flagged(real_clip, tmp_path):
    # 36 px of face region: a ~18 px face box, below what HOG finds even upsampled 2x.
    video = _reshaped(real_clip, tmp_path / "far.mp4", "scale=36:36,pad=640:360:300:80:color=gray")
    row = process_video(video, tmp_path / "shards", PARAMS)
    assert row["status"] == "ok" and row["frames_with_face"] == 0
    assert row["warning"].startswith("a face in 0% of frames: no face found, even upsampled 2x")


@pytest.mark.real_media
@pytest.mark.parametrize(
    ("clip", "video_filter"),
    [
        # Close-ups squashed to 641x361 with the aspect flag lost: HOG found no face in any of
        # the 90 frames of either until the frame was shown square.
        ("map_5s.mp4", "scale=641:361,setsar=1"),
        ("speaker_15s.mp4", "scale=641:361,setsar=1"),
        # The same close-up as it is: a face in every frame, as before.
        ("map_5s.mp4", "null"),
    ],
)
def test_squashed_close_ups_keep_their_faces(tmp_path, clip, video_filter):
    source = REAL_MEDIA / clip
    if not source.exists():
        pytest.skip(f"{source} absent")
    video = tmp_path / clip
    ffmpeg("-i", str(source), "-t", "3", "-vf", video_filter, "-c:v", "libx264", "-pix_fmt", "yuv444p",
           "-c:a", "aac", str(video))
    row = process_video(video, tmp_path / "shards", PARAMS)
    assert row["status"] == "ok" and row["frames"] == 90, row
    assert row["frames_with_face"] >= (0.95 * 90 if "setsar" in video_filter else 90), row
    assert row["warning"] == ""


def test_face_warning_names_the_likely_cause():
    assert face_warning(100, 50, np.full(50, 40.0)) == ""
    assert face_warning(0, 0, np.zeros(0)) == ""
    small = face_warning(100, 30, np.full(30, 41.0))
    assert small.startswith("a face in 30% of frames: faces about 41 px wide, smaller than ~80 px")
    assert "lost in most frames" in face_warning(100, 10, np.full(10, 150.0))


@pytest.mark.real_media
def test_real_clip(tmp_path, real_clip):
    row = process_video(real_clip, tmp_path, PARAMS)
    frames = read_partition(tmp_path, real_clip.stem)
    assert abs(len(frames) - 240) <= 1 and row["frames"] == len(frames)
    assert frames["face_found"].mean() >= 0.95
    found = frames[frames["face_found"]]
    lips = np.stack(found["lips"])
    assert np.isfinite(lips).all() and (lips > 0).all() and (lips < 1).all()
    assert simplejpeg.decode_jpeg(found["face"].iloc[0]).shape == (128, 128, 3)


# --- the flow -------------------------------------------------------------------------------


@pytest.fixture
def raw_dir(media, tmp_path) -> Path:
    videos = tmp_path / "raw" / "videos"
    videos.mkdir(parents=True)
    for name in ("tone.mp4", "silent.mp4", "truncated.mp4", "audio_only.mp4", "notes.mp4"):
        shutil.copy(media / name, videos / name)
    return videos.parent


def run_flow(raw_dir: Path, shards_dir: Path, **overrides) -> list[dict]:
    from flows.preprocess import preprocess

    params_file = Path(__file__).resolve().parents[1] / "params.yaml"
    return preprocess(
        params_file=str(params_file),
        overrides=overrides or None,
        raw_dir=str(raw_dir),
        shards_dir=str(shards_dir),
    )


def test_find_videos_reads_the_manifest(tmp_path):
    from flows.preprocess import find_videos

    (tmp_path / "videos").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "videos" / f"{name}.mp4").touch()
    assert [p.stem for p in find_videos(tmp_path)] == ["a", "b", "c"]
    pd.DataFrame({"video_id": ["a", "b", "c"], "status": ["ok", "failed", "skipped"]}).to_parquet(
        tmp_path / "manifest.parquet"
    )
    assert [p.stem for p in find_videos(tmp_path)] == ["a", "c"]
    assert [p.stem for p in find_videos(tmp_path, ["c"])] == ["c"]


def test_flow_writes_good_videos_and_reports_bad_ones(prefect_server, raw_dir, tmp_path):
    shards_dir = tmp_path / "shards"
    log = LogLines()
    loggers = [logging.getLogger("prefect"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(log)
    try:
        rows = run_flow(raw_dir, shards_dir)
    finally:
        for logger in loggers:
            logger.removeHandler(log)
    # Known failures (missing stream, truncated, not media) are one line each; no traceback.
    assert "Traceback" not in "\n".join(log.lines)
    failed = [line for line in log.lines if " failed: " in line]
    assert len(failed) == 4 and all("\n" not in line for line in failed)
    assert any(line.startswith("tone: a face in 0% of frames") for line in log.lines)
    status = {row["video_id"]: row["status"] for row in rows}
    assert status == {
        "tone": "ok",
        "silent": "failed",
        "truncated": "failed",
        "audio_only": "failed",
        "notes": "failed",
    }
    videos = pd.read_parquet(shards_dir / "_videos.parquet").set_index("video_id")
    assert videos.loc["tone", "frames"] == 60 and videos.loc["tone", "frames_with_face"] == 0
    assert videos.loc["tone", "warning"].startswith("a face in 0% of frames: no face found")
    assert "has no audio stream" in videos.loc["silent", "error"]
    assert "truncated.mp4" in videos.loc["truncated", "error"]
    assert [p.name for p in shards_dir.iterdir() if p.is_dir()] == ["video_id=tone"]

    frames = pd.read_parquet(shards_dir)
    assert len(frames) == 60 and set(frames["video_id"]) == {"tone"}
    counts = duckdb.sql(
        f"select video_id, count(*) from read_parquet('{shards_dir}/video_id=*/*.parquet', "
        "hive_partitioning=true) group by video_id"
    ).fetchall()
    assert counts == [("tone", 60)]

    again = run_flow(raw_dir, shards_dir)
    assert {row["video_id"]: row["status"] for row in again}["tone"] == "skipped"

    # A video that is no longer among the raw videos loses its partition: readers never see it.
    (raw_dir / "videos" / "tone.mp4").unlink()
    run_flow(raw_dir, shards_dir)
    assert not [p for p in shards_dir.iterdir() if p.is_dir()]


def test_killed_run_leaves_nothing_half_written(prefect_server, media, tmp_path):
    raw_dir = tmp_path / "raw"
    (raw_dir / "videos").mkdir(parents=True)
    long_video = make_video(raw_dir / "videos" / "long.mp4", seconds=20.0)
    shards_dir = tmp_path / "shards"
    runner = (
        "import sys; from pathlib import Path; from tasks.config.params import PreprocessParams; "
        "from tasks.ingest.video import process_video; "
        "process_video(Path(sys.argv[1]), Path(sys.argv[2]), PreprocessParams(row_group_size=16))"
    )
    process = subprocess.Popen([sys.executable, "-c", runner, str(long_video), str(shards_dir)])
    try:
        deadline = time.monotonic() + 60
        while not list(shards_dir.glob(".video_id=long.*.tmp/part-*.parquet")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no temporary shard appeared"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not shards.partition_dir(shards_dir, "long").exists()
    assert list(shards_dir.glob(".video_id=long.*.tmp"))

    rows = run_flow(raw_dir, shards_dir)
    assert rows[0]["status"] == "ok" and rows[0]["frames"] == 600
    assert sorted(p.name for p in shards_dir.iterdir()) == ["_videos.parquet", "video_id=long"]
    assert len(pd.read_parquet(shards_dir)) == 600


@pytest.fixture(scope="module")
def talking_raw(tmp_path_factory, media) -> Path:
    """Two demo talking-head clips (faces, speech) and one bad video."""
    from tasks.demo.corpus import make_clip

    videos = tmp_path_factory.mktemp("talking") / "videos"
    videos.mkdir()
    demo = load_params(ROOT / "params.yaml").demo
    for index in range(2):
        make_clip(videos / f"talk_{index}.mp4", seconds=2.0, seed=index, params=demo)
    shutil.copy(media / "truncated.mp4", videos / "truncated.mp4")
    return videos.parent


def sorted_frames(shards_dir: Path) -> pd.DataFrame:
    table = pd.read_parquet(shards_dir)
    table["video_id"] = table["video_id"].astype(str)
    return table.sort_values(["video_id", "frame"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def threaded_shards(prefect_server, talking_raw, tmp_path_factory) -> Path:
    shards_dir = tmp_path_factory.mktemp("threads") / "shards"
    run_flow(talking_raw, shards_dir, **{"preprocess.task_runner": "threads", "preprocess.workers": 2})
    return shards_dir


# dask, slow: the same shards through a third runner (the default suite runs processes beside threads)
@pytest.mark.parametrize("runner", ["processes", pytest.param("dask", marks=pytest.mark.slow)])
def test_parallel_task_runners_write_the_same_shards(
    prefect_server, talking_raw, threaded_shards, tmp_path, runner
):
    overrides = {"preprocess.task_runner": runner, "preprocess.workers": 2}
    cluster = None
    if runner == "dask":
        from distributed import LocalCluster

        # Two worker processes started apart from the flow, which connects to them by address.
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        overrides["preprocess.dask_address"] = cluster.scheduler_address
    try:
        rows = run_flow(talking_raw, tmp_path / "shards", **overrides)
    finally:
        if cluster is not None:
            cluster.close()
    assert sorted(row["status"] for row in rows) == ["failed", "ok", "ok"]
    ours, threaded = sorted_frames(tmp_path / "shards"), sorted_frames(threaded_shards)
    assert len(ours) == 120 and ours["face_found"].all()
    # Byte for byte in table content, the JPEG bytes included, but for the audio features: a Dask
    # worker runs BLAS on one thread, so the mel projection sums in another order (float32 rounding:
    # 3e-5 at a magnitude of 632 measured here).
    audio = [np.stack(frame.pop("audio").to_numpy()) for frame in (ours, threaded)]
    np.testing.assert_allclose(audio[0], audio[1], rtol=1e-6, atol=1e-4)
    pd.testing.assert_frame_equal(ours, threaded)


def test_summary_lists_the_flagged_videos():
    from flows.preprocess import summary_markdown

    rows = [
        {
            "video_id": "far",
            "status": "ok",
            "error": "",
            "frames": 10,
            "frames_with_face": 2,
            "seconds": 1.0,
            "warning": "a face in 20% of frames: faces about 41 px wide",
        },
        {
            "video_id": "near",
            "status": "skipped",
            "error": "",
            "frames": 10,
            "frames_with_face": 10,
            "seconds": 0.1,
            "warning": "",
        },
    ]
    summary = summary_markdown(rows, 2.0)
    assert "## Warnings" in summary and "| far | a face in 20% of frames: faces about 41 px wide |" in summary
    assert "| near |" not in summary


# --- under DVC: what makes a shard stale ------------------------------------------------------


@pytest.mark.slow
def test_under_dvc_runner_settings_keep_shards_and_code_changes_rebuild_them(tmp_path):
    repo = dvc_project_copy(tmp_path / "repo")
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}  # the copy has no .venv: bin/python takes the active one
    dvc = str(Path(sys.executable).parent / "dvc")

    def repro() -> dict[str, str]:
        done = subprocess.run(
            [dvc, "repro", "preprocess"], cwd=repo, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Running stage 'preprocess'" in done.stdout
        table = pq.read_table(repo / "data/shards/_videos.parquet").to_pylist()
        return {row["video_id"]: row["status"] for row in table}

    def part_times() -> dict[str, int]:
        parts = (repo / "data/shards").glob("video_id=*/*")
        return {str(part.relative_to(repo)): part.stat().st_mtime_ns for part in parts}

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert repro() == {"demo_00": "ok", "demo_01": "ok"}
    written = part_times()
    params = (repo / "params.yaml").read_text()
    params = params.replace("  workers: 2", "  workers: 1")
    params = params.replace("task_runner: threads", "task_runner: processes")
    (repo / "params.yaml").write_text(params)
    assert repro() == {"demo_00": "skipped", "demo_01": "skipped"}
    assert part_times() == written, "no shard is rewritten"
    with open(repo / "tasks/rows/align.py", "a") as module:
        module.write("\n# a change to the code that makes rows\n")
    assert repro() == {"demo_00": "ok", "demo_01": "ok"}
