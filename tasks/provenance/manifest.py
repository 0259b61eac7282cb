"""C2PA provenance for every mp4 reenact writes: a signed manifest that says the video is synthetic.

The manifest declares the IPTC digital source type exactly: `compositeWithTrainedAlgorithmicMedia` for an
output that composites generated faces into real footage (full, panel, face_panel), `trainedAlgorithmicMedia`
for the generated face crop alone (face). It records the watermark's render id as a `c2pa.soft-binding`
assertion (tasks/provenance/watermark.py: ALG), so a copy stripped of the manifest still leads back to it,
and carries the facts of the render (tool and version, target video, the speech's file name and sha256 (never
the file), the params digest, the sha256 of both checkpoints) in an `org.reenact.render`
assertion. It is signed with the identity of tasks/provenance/signing.py (an EC P-256 key whose certificate
reenact makes on first use under a CA of its own, kept outside the repository). A self-made CA
is not on any trust list, so a verifier reports `signingCredential.untrusted`: that is about who
signed, not about the file, and does not count as tampering.

`draw_label` is the visible counterpart, for platforms that strip metadata.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import c2pa
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tasks.config.files import sha256_file
from tasks.provenance.signing import SigningIdentity, ensure_signing_identity
from tasks.provenance.watermark import ALG, mark_id_hex

ASSERTION = "org.reenact.render"
SOFT_BINDING = "c2pa.soft-binding"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPE = IPTC + "trainedAlgorithmicMedia"  # generated media alone: the face crop
COMPOSITE_TYPE = IPTC + "compositeWithTrainedAlgorithmicMedia"  # generated faces in real footage
SYNTHETIC_TYPES = (SOURCE_TYPE, COMPOSITE_TYPE)
FACTS = (
    "tool",
    "version",
    "target_video",
    "speech_name",
    "speech_sha256",
    "params_digest",
    "lstm_sha256",
    "cgan_sha256",
)
# Failure codes that speak of the signer's standing, not of the file: a self-made CA is untrusted
# everywhere but may still sign a file that verifies byte for byte.
TRUST_CODES = {"signingCredential.untrusted"}


class ProvenanceError(RuntimeError):
    """Signing failed: no usable key, or c2pa refused the file; the message names the file."""


@dataclass
class Verdict:
    """What `verify_mp4` found. `intact`: every hash and the signature match the bytes."""

    path: str
    signed: bool
    intact: bool
    trusted: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    source_type: str = ""
    signer: str = ""
    manifest: str = ""
    digest: str = ""
    failures: list[str] = field(default_factory=list)
    error: str = ""
    soft_binding: str = ""  # the watermark id the manifest records (ALG), hex; "" when none


    @property
    def ok(self) -> bool:
        return self.signed and self.intact

    @property
    def synthetic(self) -> bool:
        return self.source_type in SYNTHETIC_TYPES

    def describe(self) -> str:
        """One line for people: signed and intact, tampered, or unsigned."""
        if not self.signed:
            return "unsigned: no C2PA manifest"
        if not self.intact:
            why = ", ".join(self.failures) or self.error
            return f"TAMPERED: the file no longer matches its manifest ({why})"
        kinds = {SOURCE_TYPE: "AI-generated", COMPOSITE_TYPE: "real footage with AI-generated parts"}
        name = self.source_type.rsplit("/", 1)[-1]
        kind = f"{kinds[self.source_type]} ({name})" if self.synthetic else self.source_type or "unknown"
        return f"signed and intact: {kind}, by {self.signer}"


def tool_version() -> str:
    return version("reenact")


def _signer(identity: SigningIdentity) -> c2pa.Signer:
    chain = identity.cert.read_bytes()
    if identity.ca is not None and identity.ca.read_bytes().strip() not in chain:
        chain += identity.ca.read_bytes()
    info = c2pa.C2paSignerInfo(b"es256", chain, identity.key.read_bytes(), None)
    return c2pa.Signer.from_info(info)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint, computed once per version of the file (an app renders many times)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _file_sha256(path, stat.st_size, stat.st_mtime_ns)


def render_facts(
    *,
    speech: str | Path,
    target_video: str,
    params_digest: str,
    lstm: str | Path,
    cgan: str | Path,
    speech_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The facts a render's manifest carries: the speech is named and hashed, never embedded.
    `speech_name` overrides the file's own name (e.g. the URL a temporary download came from)."""
    return {
        "tool": "reenact",
        "version": tool_version(),
        "target_video": target_video,
        "speech_name": speech_name or Path(speech).name,
        "speech_sha256": sha256_file(speech),
        "params_digest": params_digest,
        "lstm_sha256": checkpoint_sha256(lstm),
        "cgan_sha256": checkpoint_sha256(cgan),
        **extra,
    }


def source_type_of(output: str) -> str:
    """The IPTC digital source type of a render output: only the face crop ("face") is generated whole."""
    return SOURCE_TYPE if output == "face" else COMPOSITE_TYPE


def manifest_definition(
    facts: dict[str, Any], title: str, source_type: str = SOURCE_TYPE, mark_id: int | None = None
) -> dict[str, Any]:
    agent = {"name": facts["tool"], "version": str(facts["version"])}
    created = {
        "action": "c2pa.created",
        "digitalSourceType": source_type,
        "softwareAgent": agent,
        "description": f"speech-driven reenactment of {facts['target_video']}",
    }
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [created]}},
            {"label": ASSERTION, "data": facts},
            *([] if mark_id is None else [soft_binding(mark_id)]),
        ],
    }


def soft_binding(mark_id: int) -> dict[str, Any]:
    """The `c2pa.soft-binding` assertion of the watermark with render id `mark_id` (an empty scope:
    the whole video)."""
    data = {
        "alg": ALG,
        "blocks": [{"scope": {}, "value": mark_id_hex(mark_id)}],
        "name": "reenact watermark: every frame, over the face",
    }
    return {"label": SOFT_BINDING, "data": data}


def sign_mp4(
    src: str | Path,
    dst: str | Path,
    facts: dict[str, Any],
    key_dir: str | Path | None = None,
    source_type: str | None = None,
    mark_id: int | None = None,
) -> dict[str, Any]:
    """Sign the mp4 `src` into `dst` (may be the same path; `dst` is written under a temporary name and
    renamed, so it is either the old file or the whole signed one). `facts` needs FACTS' keys
    (`render_facts` makes them; tool and version default to reenact's). `source_type`: the digital
    source type (default SOURCE_TYPE; `source_type_of(output)` for a render); `mark_id`: the
    watermark's render id, recorded as the soft binding. Returns {"manifest" (its
    label), "digest" (hex sha256 the manifest binds to the video's bytes), "signer", "seconds"}."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    facts = {"tool": "reenact", "version": tool_version(), **facts}
    missing = [key for key in FACTS if key not in facts]
    if missing:
        raise ValueError(f"provenance facts lack {', '.join(missing)}")
    identity = ensure_signing_identity(key_dir)
    partial = dst.with_name(f".{dst.name}.signing")
    try:
        builder = c2pa.Builder(manifest_definition(facts, dst.name, source_type or SOURCE_TYPE, mark_id))
        with open(src, "rb") as source, open(partial, "w+b") as target:
            builder.sign(_signer(identity), "video/mp4", source, target)
        partial.replace(dst)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"{src}: could not be signed ({exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    verdict = verify_mp4(dst)
    return {
        "manifest": verdict.manifest,
        "digest": verdict.digest,
        "signer": verdict.signer,
        "seconds": time.perf_counter() - started,
    }


def _content_digest(manifest: dict) -> str:
    """Hex of the hash in the manifest's hard binding to the file's bytes (c2pa.hash.*)."""
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.hash.") and "hash" in assertion.get("data", {}):
            return base64.b64decode(assertion["data"]["hash"]).hex()
    return ""


def _source_type(manifest: dict) -> str:
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if action.get("digitalSourceType"):
                    return action["digitalSourceType"]
    return ""


def _soft_binding(manifest: dict) -> str:
    for assertion in manifest.get("assertions", []):
        data = assertion.get("data", {})
        if assertion.get("label") == SOFT_BINDING and data.get("alg") == ALG and data.get("blocks"):
            return str(data["blocks"][0].get("value", ""))
    return ""


def verify_mp4(path: str | Path) -> Verdict:
    """Read and validate the file's C2PA manifest. Unsigned: signed=False. A changed byte of the video
    is a hash mismatch: intact=False. An untrusted (self-made) signer alone leaves intact=True."""
    path = Path(path)
    if not path.is_file():
        return Verdict(str(path), signed=False, intact=False, error="no such file")
    with open(path, "rb") as stream:
        if stream.read(12)[4:8] != b"ftyp":  # not ISO BMFF (mp4/mov): a .mkv or .webm copy holds no manifest
            return Verdict(str(path), signed=False, intact=False, error="unsigned: no C2PA manifest")
    try:
        with open(path, "rb") as stream, c2pa.Reader("video/mp4", stream) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return Verdict(str(path), signed=False, intact=False, error="unsigned: no C2PA manifest")
    except c2pa.C2paError as exc:
        # A manifest that cannot be parsed (a byte changed inside it) is no longer what was signed.
        return Verdict(str(path), signed=True, intact=False, error=f"manifest unreadable: {exc}")
    label = store.get("active_manifest", "")
    manifest = store.get("manifests", {}).get(label, {})
    codes = [item.get("code", "") for item in store.get("validation_status", [])]
    failures = [code for code in codes if code not in TRUST_CODES]
    assertions = manifest.get("assertions", [])
    found = next((a.get("data", {}) for a in assertions if a.get("label") == ASSERTION), {})
    facts = {key: found[key] for key in (*FACTS, *sorted(found)) if key in found}  # FACTS' order first
    info = manifest.get("signature_info", {})
    return Verdict(
        str(path),
        signed=True,
        intact=not failures and bool(manifest),
        trusted=store.get("validation_state") == "Trusted",
        facts=facts,
        source_type=_source_type(manifest),
        signer=f"{info.get('common_name', '')} ({info.get('issuer', '')})",
        manifest=label,
        digest=_content_digest(manifest),
        failures=failures,
        soft_binding=_soft_binding(manifest),
    )


@functools.lru_cache(maxsize=8)
def _label_patch(text: str, height: int) -> np.ndarray:
    """(h, w, 4) RGBA float in [0, 1]: white text on a translucent black box, sized to the frame."""
    size = max(10, height // 24)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, size // 3)
    patch = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 150))
    ImageDraw.Draw(patch).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(patch, np.float32) / 255.0


def draw_label(frames: np.ndarray, text: str = "AI-generated") -> np.ndarray:
    """A copy of (n, H, W, 3) uint8 `frames` (or one (H, W, 3) frame) with `text` in the bottom-right
    corner, on a translucent box: the visible mark for platforms that strip the manifest."""
    frames = np.asarray(frames)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    height, width = batch.shape[1:3]
    patch = _label_patch(text, height)
    margin = max(2, height // 64)
    h, w = min(patch.shape[0], height - margin), min(patch.shape[1], width - margin)
    patch = patch[:h, :w]
    out = batch.copy()
    rows, cols = slice(height - margin - h, height - margin), slice(width - margin - w, width - margin)
    alpha = patch[..., 3:]
    blended = out[:, rows, cols].astype(np.float32) * (1 - alpha) + patch[..., :3] * 255.0 * alpha
    out[:, rows, cols] = np.rint(blended).astype(np.uint8)
    return out[0] if single else out
