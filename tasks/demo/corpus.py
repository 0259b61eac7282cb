"""The offline demo corpus: a talking face made from a photo and synthetic speech.

Each clip is espeak-ng speech (several sentences, one voice and speed per clip, pauses between
sentences) and scikit-image's astronaut photo with its mouth opened by the speech's loudness
and rounded or spread by its spectrum, the head drifting a little, encoded as H.264 + AAC. It is
the pipeline's default source: `dvc repro` works with no network, and the tests build on it.
Everything is a function of the seed: the same seed gives the same pixels and samples.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from tasks.config.files import atomic_path
from tasks.config.params import DemoParams
from tasks.demo.warp import face_rig, render

ESPEAK = "espeak-ng"
FFMPEG = "ffmpeg"
# espeak-ng's female variants: the photo is of a woman.
VOICES = ("en-us+f3", "en-gb+f2", "en-us+f4", "en-gb-x-rp+f5")
WPM = (140, 180)
SENTENCES = (
    "We are go for launch.",
    "The crew checked every switch twice before the countdown.",
    "Who knew the moon would look so blue from orbit?",
    "Please keep your seat belts fastened until we reach cruising altitude.",
    "Houston, the shuttle is stable and all systems look good.",
    "Three, two, one, and lift off.",
    "I can see the green coast and the deep sea below us.",
    "Our food tastes a little different up here.",
    "Sleeping in a bag tied to the wall is easier than you think.",
    "Thank you all for watching, and good night from space.",
    "The view of the sunrise every ninety minutes never gets old.",
    "Father always said to look up at the stars.",
    "Could you pass me the blue tool box, please?",
    "We will open the hatch at noon tomorrow.",
    "Each experiment teaches us something new about the human body.",
    "Oh, what a wonderful world it is.",
)
PAUSE_S = (0.3, 0.8)
LEAD_S = (0.15, 0.45)
WINDOW_S = 0.040  # loudness window, centred on each frame
GATE = 0.01  # of the loudest window: quieter is silence, mouth closed
CENTROID_HZ = 4000  # spectral centroid band: vowels' formants, not the hiss of fricatives


class DemoError(RuntimeError):
    """The demo corpus could not be made: a missing tool or a failed encode; the message says which."""


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise DemoError(
            f"{binary!r} not found on PATH: the demo corpus needs {package} "
            f"(Debian: apt-get install {package})"
        )
    return path


def _say(text: str, voice: str, wpm: int, pitch: int, espeak: str) -> tuple[np.ndarray, int]:
    """One sentence from espeak-ng, its leading and trailing silence cut."""
    result = subprocess.run(
        [espeak, "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise DemoError(
            f"espeak-ng failed for voice {voice!r}: {result.stderr.decode(errors='replace').strip()}"
        )
    audio, sample_rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    pad = int(0.02 * sample_rate)
    return audio[max(loud[0] - pad, 0) : loud[-1] + pad], sample_rate


def speech(
    seconds: float, rng: np.random.Generator, voice: str, espeak: str = ESPEAK
) -> tuple[np.ndarray, int]:
    """`seconds` of sentences in `voice` at a random speed, with pauses; float32 mono.

    The last sentence is cut at the clip's end with a short fade, as a clip cut from a longer
    talk would be."""
    wpm, pitch = int(rng.integers(WPM[0], WPM[1] + 1)), int(rng.integers(40, 66))
    order = rng.permutation(len(SENTENCES))
    pieces, sample_rate, total = [], 0, 0.0
    pause = rng.uniform(*LEAD_S)
    for index in itertools.cycle(order):
        sentence, sample_rate = _say(SENTENCES[index], voice, wpm, pitch, espeak)
        pieces += [np.zeros(int(pause * sample_rate), np.float32), sentence]
        total += pause + len(sentence) / sample_rate
        if total >= seconds:
            break
        pause = rng.uniform(*PAUSE_S)
    n = round(seconds * sample_rate)
    audio = np.concatenate(pieces)[:n]
    audio = np.pad(audio, (0, n - len(audio)))
    fade = min(int(0.05 * sample_rate), n)
    audio[n - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    return 0.9 * audio / max(np.abs(audio).max(), 1e-6), sample_rate


def mouth_drive(
    audio: np.ndarray, sample_rate: int, n_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: mouth opening 0..1 from loudness, and width -1 (rounded) .. 1 (spread) from the spectrum.

    Opening is the 40 ms RMS over its 97th percentile, to the power 0.6 (a dB scale saturates),
    gated at 1% of the peak. Width follows the spectral centroid: a low one ("oo") rounds the lips,
    a high one ("ee") spreads them, so the lips carry more than loudness."""
    half = int(WINDOW_S * sample_rate / 2)
    centres = np.round(np.arange(n_frames) * sample_rate / fps).astype(int)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (half, half)), 2 * half)[centres]
    rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
    voiced = rms >= GATE * rms.max()
    if not voiced.any():
        return np.zeros(n_frames), np.zeros(n_frames)
    opening = np.clip(rms / np.percentile(rms, 97), 0, 1) ** 0.6 * voiced
    # Lips cannot jump from shut to wide within one frame as a 40 ms window can.
    opening = _smooth(opening)

    spectrum = np.abs(np.fft.rfft(windows * np.hanning(2 * half), axis=1))
    freqs = np.fft.rfftfreq(2 * half, 1 / sample_rate)
    band = freqs < CENTROID_HZ
    centroid = (spectrum[:, band] @ freqs[band]) / (spectrum[:, band].sum(1) + 1e-9)
    low, mid, high = np.percentile(centroid[voiced], [10, 50, 90])
    width = np.clip((centroid - mid) / max((high - low) / 2, 1.0), -1, 1) * voiced
    return opening, _smooth(width)


def _smooth(x: np.ndarray) -> np.ndarray:
    return np.convolve(np.pad(x, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")


def head_motion(n_frames: int, fps: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """(n_frames, 3): roll in degrees and a shift in pixels, each a sum of slow sines (0.05-0.4 Hz)."""
    t = np.arange(n_frames)[:, None] / fps
    amplitude = np.array([1.5, 4.0 * size / 512, 3.0 * size / 512])
    motion = np.zeros((n_frames, 3))
    for axis in range(3):
        freqs = rng.uniform(0.05, 0.4, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        weights = rng.dirichlet(np.ones(3))
        motion[:, axis] = amplitude[axis] * (weights * np.sin(2 * np.pi * freqs * t + phases)).sum(1)
    return motion


def _encode(path: Path, frames: Iterator[np.ndarray], wav: Path, params: DemoParams) -> None:
    """H.264 (yuv420p) + AAC mp4 from raw RGB frames on ffmpeg's stdin, written atomically."""
    ffmpeg = _require(FFMPEG, "ffmpeg")
    frames_in = [
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{params.size}x{params.size}",
        "-r",
        str(params.fps),
    ]
    video_out = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    audio_out = ["-c:a", "aac", "-b:a", "96k"]
    inputs = [*frames_in, "-i", "pipe:0", "-i", str(wav), "-map", "0:v", "-map", "1:a"]
    with atomic_path(path) as temp:
        mp4_out = ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(temp)]
        command = [ffmpeg, "-nostdin", "-y", "-loglevel", "error", *inputs, *video_out, *audio_out, *mp4_out]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # A broken pipe means ffmpeg stopped early: its stderr, read next, says why.
            with contextlib.suppress(BrokenPipeError):
                for frame in frames:
                    process.stdin.write(frame.tobytes())
                process.stdin.close()
            error = process.stderr.read().decode(errors="replace").strip()
            if process.wait() != 0:
                raise DemoError(f"{path}: ffmpeg failed: {error or f'exit {process.returncode}'}")
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()


def make_clip(
    path: Path, seconds: float, seed: int, params: DemoParams, voice: str | None = None, espeak: str = ESPEAK
) -> Path:
    """One talking-face clip of `seconds` at `path`; the same seed gives the same pixels and samples."""
    path = Path(path)
    espeak = _require(espeak, "espeak-ng")
    rng = np.random.default_rng(seed)
    voice = voice or VOICES[int(rng.integers(len(VOICES)))]
    n_frames = round(seconds * params.fps)
    audio, sample_rate = speech(n_frames / params.fps, rng, voice, espeak)
    opening, width = mouth_drive(audio, sample_rate, n_frames, params.fps)
    motion = head_motion(n_frames, params.fps, rng, params.size)
    rig = face_rig(params.size)
    frames = (render(rig, opening[i], width[i], tuple(motion[i])) for i in range(n_frames))
    with tempfile.TemporaryDirectory(prefix="reenact-demo-") as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, audio, sample_rate, subtype="PCM_16")
        _encode(path, frames, wav, params)
    return path


def make_demo_corpus(out_dir: Path, params: DemoParams, espeak: str = ESPEAK) -> list[Path]:
    """`params.clips` clips of `params.seconds`, out_dir/demo_00.mp4 ..., voices taken in turn."""
    out_dir = Path(out_dir)
    _require(espeak, "espeak-ng")
    paths = []
    for i in range(params.clips):
        seed = int(np.random.SeedSequence([params.seed, i]).generate_state(1)[0])
        path = out_dir / f"demo_{i:02d}.mp4"
        paths.append(make_clip(path, params.seconds, seed, params, VOICES[i % len(VOICES)], espeak))
    return paths
