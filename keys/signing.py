"""Node and DPO signing keys (Ed25519) and their fingerprints.

A fingerprint is ``ed25519:`` + hex SHA-256 of the raw 32-byte public key, as policies name
parties. Verification failures raise one opaque :class:`KeyMaterialError`; the reason is for
the audit log, never for the caller.

Key files (DPO keys, and node keys when they are kept on disk) are PKCS #8 PEM encrypted with a
passphrase (``BestAvailableEncryption``: scrypt and AES-256-CBC in current pyca/cryptography),
written 0600. The passphrase comes from an environment variable, never argv. An unencrypted
file is written and read only when the caller says so with ``unencrypted_unsafe=True``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from keys.errors import KeyMaterialError

FINGERPRINT_PREFIX = "ed25519:"


def fingerprint(public_key_raw: bytes) -> str:
    """The fingerprint of a raw Ed25519 public key."""
    return FINGERPRINT_PREFIX + hashlib.sha256(public_key_raw).hexdigest()


@dataclass(frozen=True, repr=False)
class SigningKey:
    """An Ed25519 private key with its public half and fingerprint."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey({self.fingerprint})"


def verify_signature(public_key_raw: bytes, signature: bytes, message: bytes) -> None:
    """Raise one opaque error if the signature does not verify under the key."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise KeyMaterialError(
            "signature verification failed", fix="check that the node key and batch match"
        ) from None


MIN_PASSPHRASE_CHARS = 12
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _key_file_error(path: Path) -> KeyMaterialError:
    return KeyMaterialError(
        f"cannot load the signing key file {path}: wrong passphrase, damaged or not a key",
        fix="check the file and the passphrase variable; make a key with `placelink keys dpo new`",
    )


def save_signing_key(
    path: Path, key: SigningKey, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> None:
    """Write ``key`` as PKCS #8 PEM, encrypted under ``passphrase``, mode 0600."""
    if passphrase is None and not unencrypted_unsafe:
        raise KeyMaterialError(
            f"no passphrase to encrypt {path}",
            fix="set the passphrase environment variable (or, for tests only, unencrypted_unsafe)",
        )
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyMaterialError(
            f"the passphrase for {path} is shorter than {MIN_PASSPHRASE_CHARS} characters",
            fix="use a longer passphrase, e.g. four random words",
        )
    encryption = (
        NoEncryption() if passphrase is None else BestAvailableEncryption(passphrase.encode())
    )
    pem = key.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)
        handle.write(pem)


def load_signing_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> SigningKey:
    """Read a key file written by :func:`save_signing_key`; any failure is one opaque error."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(
            f"cannot read the signing key file {path}: {exc.strerror}",
            fix="check the path passed as --key",
        ) from None
    encrypted = pem.lstrip().startswith(_ENCRYPTED_PEM)
    if not encrypted and not unencrypted_unsafe:
        raise KeyMaterialError(
            f"the signing key file {path} is not encrypted",
            fix="re-create it with a passphrase, or pass --unencrypted-unsafe (tests only)",
        )
    if encrypted and not passphrase:
        raise KeyMaterialError(
            f"the signing key file {path} is encrypted and no passphrase was given",
            fix="set the passphrase environment variable (PLACELINK_DPO_PASSPHRASE)",
        )
    try:
        secret = passphrase.encode() if encrypted and passphrase else None
        private = load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError):
        raise _key_file_error(path) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise _key_file_error(path)
    return SigningKey(private)
