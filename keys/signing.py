"""Node and DPO signing keys (Ed25519) and their fingerprints.

A fingerprint is ``ed25519:`` + hex SHA-256 of the raw 32-byte public key, as policies name
parties. Verification failures raise one opaque :class:`KeyMaterialError`; the reason is for
the audit log, never for the caller.

Key files (DPO keys, and node keys when they are kept on disk) follow the recipe of
:mod:`keys.keyfiles`: PKCS #8 PEM encrypted with a passphrase (``BestAvailableEncryption``:
scrypt and AES-256-CBC in current pyca/cryptography), written 0600. The passphrase comes from an
environment variable or a prompt, never argv. An unencrypted file is written and read only when
the caller says so with ``unencrypted_unsafe=True``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keys.errors import KeyMaterialError
from keys.keyfiles import MIN_PASSPHRASE_CHARS, load_ed25519_key, save_private_key

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


def save_signing_key(
    path: Path, key: SigningKey, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> None:
    """Write ``key`` as PKCS #8 PEM, encrypted under ``passphrase``, mode 0600."""
    save_private_key(
        path, key.private, passphrase=passphrase, unencrypted_unsafe=unencrypted_unsafe
    )


def load_signing_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> SigningKey:
    """Read a key file written by :func:`save_signing_key`; any failure is one opaque error."""
    private = load_ed25519_key(path, passphrase=passphrase, unencrypted_unsafe=unencrypted_unsafe)
    return SigningKey(private)


__all__ = [
    "MIN_PASSPHRASE_CHARS",
    "SigningKey",
    "fingerprint",
    "load_signing_key",
    "save_signing_key",
    "verify_signature",
]
