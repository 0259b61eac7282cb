"""Shared test set-up: an isolated Prefect home, offline settings, real-media fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tasks.config.paths import REAL_FIXTURES

ROOT = Path(__file__).resolve().parents[1]
REAL_MEDIA = REAL_FIXTURES  # the real fixtures beside the project (ARCHITECTURE.md), or $REENACT_FIXTURES
REAL_CLIP = REAL_MEDIA / "WDA_AlexandriaOcasioCortez_000.mp4"
REAL_SPEECH = REAL_MEDIA / "RD_Radio31_000.wav"

# Before any test imports Prefect: a Prefect home of the test session's own (so flows run
# against a temporary local server with a fresh SQLite database), and nothing phones home.
_prefect_home = tempfile.mkdtemp(prefix="reenact-prefect-")
os.environ["PREFECT_HOME"] = _prefect_home
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "reenact" / "numba"))
# Renders are signed: with a key of the test session's own, never the user's ~/.config/reenact/signing.
os.environ.setdefault("REENACT_SIGNING_DIR", tempfile.mkdtemp(prefix="reenact-signing-"))

# Tiny trained projects, each trained once a session for every module that renders or evaluates.
from render_kit import footage, kit, tiny_models  # noqa: F401


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect server (SQLite) for the tests that run flows, stopped at the end."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def real_clip() -> Path:
    if not REAL_CLIP.exists():
        pytest.skip(f"{REAL_CLIP} absent")
    return REAL_CLIP


@pytest.fixture
def real_speech() -> Path:
    if not REAL_SPEECH.exists():
        pytest.skip(f"{REAL_SPEECH} absent")
    return REAL_SPEECH
