"""The signing identity of C2PA provenance (tasks/provenance/manifest.py): an EC P-256 key and its
certificate,
made on first use under a CA of reenact's own and kept outside the repository, in `key_dir`, else
$REENACT_SIGNING_DIR, else ~/.config/reenact/signing. An organisation puts its own `signer.pem`
(leaf first, then its chain) and `signer.key` (PKCS#8) there instead.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ENV_DIR = "REENACT_SIGNING_DIR"
DEFAULT_DIR = Path("~/.config/reenact/signing")
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class SigningIdentity:
    """The files of a signing identity; `ca` is empty when the chain lives in `cert` alone."""

    directory: Path
    cert: Path
    key: Path
    ca: Path | None


def signing_dir(key_dir: str | Path | None = None) -> Path:
    """`key_dir` when given (non-empty), else $REENACT_SIGNING_DIR, else ~/.config/reenact/signing."""
    chosen = str(key_dir or "") or os.environ.get(ENV_DIR, "") or str(DEFAULT_DIR)
    return Path(chosen).expanduser()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reenact"),
        ]
    )


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """A CA certificate when `issuer` is None (self-signed), else a signing leaf for C2PA."""
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(_usage(sign=False), critical=True)
    else:
        # C2PA's profile for signing certificates: digitalSignature, and an EKU from its list.
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int) -> None:
    """Written under a temporary name and renamed: a reader never sees half a key."""
    partial = path.with_name(f".{path.name}.partial")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
        handle.write(data)
    partial.replace(path)


def _generate(directory: Path) -> None:
    pem = serialization.Encoding.PEM
    pkcs8 = {
        "encoding": pem,
        "format": serialization.PrivateFormat.PKCS8,
        "encryption_algorithm": serialization.NoEncryption(),
    }
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("reenact local signing CA", ca_key, None, ca_key)
    leaf = _certificate("reenact renderer", key, ca.subject, ca_key)
    _write(directory / "ca.key", ca_key.private_bytes(**pkcs8), 0o600)
    _write(directory / "ca.pem", ca.public_bytes(pem), 0o644)
    _write(directory / "signer.key", key.private_bytes(**pkcs8), 0o600)
    _write(directory / "signer.pem", leaf.public_bytes(pem), 0o644)


def ensure_signing_identity(key_dir: str | Path | None = None) -> SigningIdentity:
    """The signing key and certificates in `signing_dir(key_dir)`, made there on first use (P-256 CA
    and leaf). A lock file keeps two processes starting at once from making two mismatched pairs."""
    directory = signing_dir(key_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key, ca = directory / "signer.pem", directory / "signer.key", directory / "ca.pem"
    if not (cert.exists() and key.exists()):
        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (cert.exists() and key.exists()):
                _generate(directory)
    return SigningIdentity(directory, cert, key, ca if ca.exists() else None)
