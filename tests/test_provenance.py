"""C2PA provenance with the real c2pa library: signing identity, sign, verify, tamper, the visible label,
and the manifest of a real render (tiny models from test_render's `kit`)."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from helpers import reenact
from render_kit import ffmpeg, write_voice

from flows.render import render_file
from tasks.config.files import sha256_file
from tasks.config.params import digest
from tasks.provenance.manifest import FACTS, SOURCE_TYPE, draw_label, render_facts, sign_mp4, verify_mp4
from tasks.provenance.signing import ENV_DIR, ensure_signing_identity, signing_dir


@pytest.fixture(autouse=True)
def signing_home(tmp_path_factory, monkeypatch) -> Path:
    """One signing identity for the session's tests, never the user's ~/.config."""
    directory = tmp_path_factory.getbasetemp() / "signing"
    monkeypatch.setenv(ENV_DIR, str(directory))
    return directory


def plain_mp4(path: Path, seconds: float = 2.0, size: int = 128) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}x{size}:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    return path


def facts_for(tmp_path: Path) -> dict:
    write_voice(tmp_path / "speech.wav", 1.0, seed=3)
    for name in ("lstm.pt", "cgan.pt"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    return render_facts(
        speech=tmp_path / "speech.wav",
        target_video="demo_05",
        params_digest="0123456789abcdef",
        lstm=tmp_path / "lstm.pt",
        cgan=tmp_path / "cgan.pt",
    )


def test_identity_is_made_once_with_a_c2pa_signing_certificate(tmp_path):
    identity = ensure_signing_identity(tmp_path / "keys")
    assert identity.directory == tmp_path / "keys" and identity.ca is not None
    assert identity.key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    leaf = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(identity.ca.read_bytes())
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)

    def extension(cert: x509.Certificate, kind: type) -> object:
        return cert.extensions.get_extension_for_class(kind).value

    assert extension(leaf, x509.KeyUsage).digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in extension(leaf, x509.ExtendedKeyUsage)
    assert not extension(leaf, x509.BasicConstraints).ca and extension(ca, x509.BasicConstraints).ca
    ski = extension(ca, x509.SubjectKeyIdentifier).digest
    assert extension(leaf, x509.AuthorityKeyIdentifier).key_identifier == ski

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (tmp_path / "keys").glob("*.*")}

    before = files()
    ensure_signing_identity(tmp_path / "keys")
    assert files() == before, "made once, then reused"


def test_key_dir_param_beats_the_environment_and_the_default_is_outside_the_repo(tmp_path, monkeypatch):
    assert signing_dir(tmp_path / "org") == tmp_path / "org"
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "env"))
    assert signing_dir("") == signing_dir(None) == tmp_path / "env"
    monkeypatch.delenv(ENV_DIR)
    assert signing_dir("") == Path.home() / ".config" / "reenact" / "signing"


def test_signed_mp4_declares_synthetic_media_and_the_render_facts(tmp_path):
    facts = facts_for(tmp_path)
    signed = sign_mp4(plain_mp4(tmp_path / "plain.mp4"), tmp_path / "signed.mp4", facts)
    verdict = verify_mp4(tmp_path / "signed.mp4")
    assert verdict.ok and verdict.synthetic and verdict.source_type == SOURCE_TYPE
    assert not verdict.trusted, "a self-made CA is on no trust list; that alone is not tampering"
    assert list(verdict.facts)[: len(FACTS)] == list(FACTS) and verdict.facts == facts
    assert verdict.facts["speech_sha256"] == sha256_file(tmp_path / "speech.wav")
    assert verdict.facts["speech_name"] == "speech.wav" and verdict.facts["tool"] == "reenact"
    assert signed["manifest"] == verdict.manifest and len(verdict.digest) == 64
    assert not verify_mp4(tmp_path / "plain.mp4").signed, "the source is left as it was"


def test_verify_command_passes_signed_fails_tampered_and_says_unsigned(tmp_path):
    sign_mp4(plain_mp4(tmp_path / "plain.mp4"), tmp_path / "signed.mp4", facts_for(tmp_path))

    def verify(name: str):
        return reenact("verify", name, cwd=tmp_path)

    good = verify("signed.mp4")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "signed and intact" in good.stdout and "trainedAlgorithmicMedia" in good.stdout
    assert "demo_05" in good.stdout and sha256_file(tmp_path / "speech.wav") in good.stdout

    data = bytearray((tmp_path / "signed.mp4").read_bytes())
    data[data.index(b"mdat") + 1000] ^= 0x01  # one bit of the coded video
    (tmp_path / "tampered.mp4").write_bytes(bytes(data))
    bad = verify("tampered.mp4")
    assert bad.returncode == 3 and "TAMPERED" in bad.stdout and "bmffHash.mismatch" in bad.stdout

    plain = verify("plain.mp4")
    assert plain.returncode == 1 and "unsigned" in plain.stdout
    missing = verify("nothing.mp4")
    assert missing.returncode == 1 and "no such file" in missing.stdout


def test_a_changed_byte_inside_the_manifest_is_not_intact(tmp_path):
    sign_mp4(plain_mp4(tmp_path / "plain.mp4"), tmp_path / "signed.mp4", facts_for(tmp_path))
    data = bytearray((tmp_path / "signed.mp4").read_bytes())
    data[data.index(b"demo_05")] ^= 0x20  # the target's name in the facts: "Demo_05"
    (tmp_path / "edited.mp4").write_bytes(bytes(data))
    verdict = verify_mp4(tmp_path / "edited.mp4")
    assert verdict.signed and not verdict.intact and not verdict.ok


def test_signing_a_render_sized_video_takes_well_under_a_second(tmp_path):
    video = plain_mp4(tmp_path / "long.mp4", seconds=30.0, size=512)
    facts = facts_for(tmp_path)
    sign_mp4(video, tmp_path / "warm.mp4", facts)  # the identity is made on first use, once per machine
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        sign_mp4(video, tmp_path / "signed.mp4", facts)
        seconds.append(time.perf_counter() - started)
    megabytes = video.stat().st_size / 1e6
    print(f"signing {megabytes:.1f} MB (30 s at 512x512): median {statistics.median(seconds) * 1000:.0f} ms")
    assert statistics.median(seconds) < 0.25
    assert verify_mp4(tmp_path / "signed.mp4").ok


def test_sign_refuses_incomplete_facts_and_leaves_no_file(tmp_path):
    facts = facts_for(tmp_path)
    del facts["cgan_sha256"]
    with pytest.raises(ValueError, match="cgan_sha256"):
        sign_mp4(plain_mp4(tmp_path / "plain.mp4"), tmp_path / "signed.mp4", facts)
    assert not (tmp_path / "signed.mp4").exists()


def test_sign_in_place_replaces_the_file_whole(tmp_path):
    video = plain_mp4(tmp_path / "talk.mp4")
    sign_mp4(video, video, facts_for(tmp_path))
    assert verify_mp4(video).ok
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["talk.mp4"] and not list(tmp_path.glob(".*"))


def test_draw_label_marks_only_the_bottom_right_corner():
    frames = np.full((3, 256, 320, 3), 90, np.uint8)
    labelled = draw_label(frames)
    assert labelled.shape == frames.shape and labelled.dtype == np.uint8
    assert (frames == 90).all(), "the input is not changed"
    changed = np.argwhere((labelled != frames).any(axis=(0, 3)))
    assert changed[:, 0].min() > 256 * 0.8 and changed[:, 1].min() > 320 * 0.4, "bottom right only"
    assert labelled.max() > 200 and labelled.min() < 60, "white text on a dark box"
    np.testing.assert_array_equal(labelled[0], labelled[2])
    np.testing.assert_array_equal(draw_label(frames[0], "AI"), draw_label(frames, "AI")[0])


def frame_at(path: Path, index: int, size: int) -> np.ndarray:
    command = [
        "ffmpeg",
        "-v",
        "error",
        "-i",
        str(path),
        "-vf",
        f"select=eq(n\\,{index})",
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3)


def test_a_fresh_render_is_signed_with_its_inputs_and_the_label_param_shows(kit, tmp_path):
    write_voice(tmp_path / "speech.wav", 1.5, seed=7)
    common = {"paths": kit.paths, "target": kit.resolve(), "output": "face"}
    result = render_file(tmp_path / "speech.wav", tmp_path / "talk.mp4", **common)
    verdict = result.provenance
    assert verdict.ok and verdict.synthetic and result.speech == "speech.wav"
    facts = verdict.facts
    assert facts["target_video"] == result.target == kit.target
    assert facts["speech_name"] == "speech.wav"
    assert facts["speech_sha256"] == sha256_file(tmp_path / "speech.wav")
    assert facts["lstm_sha256"] == sha256_file(kit.paths.lstm)
    assert facts["cgan_sha256"] == sha256_file(kit.paths.cgan)
    assert facts["params_digest"] == digest(kit.params)
    assert reenact("verify", "talk.mp4", cwd=tmp_path).returncode == 0

    labelled = render_file(
        tmp_path / "speech.wav", tmp_path / "labelled.mp4", overrides={"provenance.label": True}, **common
    )
    assert labelled.provenance.ok
    plain, marked = frame_at(tmp_path / "talk.mp4", 10, 128), frame_at(tmp_path / "labelled.mp4", 10, 128)
    corner = np.abs(plain[-20:, -50:].astype(int) - marked[-20:, -50:]).mean()
    rest = np.abs(plain[:64, :64].astype(int) - marked[:64, :64]).mean()
    assert corner > 10 * max(rest, 0.5), (corner, rest)
