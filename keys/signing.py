"""Node and DPO signing keys (Ed25519) and their fingerprints.

A fingerprint is ``ed25519:`` + hex SHA-256 of the raw 32-byte public key, as policies name
parties. Verification failures raise one opaque :class:`KeyMaterialError`; the reason is for
the audit log, never for the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
