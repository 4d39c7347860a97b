"""Key derivation: one HKDF-SHA256 step per (purpose, policy, epoch, field).

Every key an encoder uses is derived from the linkage secret with a label that names what the
key is for, so that keys of different policies, epochs, fields or purposes are independent:
encodings made under one policy cannot be linked with another's.

The label is ``placelink/v1/<purpose>/<policy_id>/<epoch>/<field>``, UTF-8, as HKDF ``info``;
the salt is fixed (``placelink linkage v1``) because the secret is already uniformly random.
Changing either changes every encoding of every agency; known-answer vectors pin them.
"""

from __future__ import annotations

from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys.errors import KeyMaterialError
from keys.secret import LinkageSecret

HKDF_SALT = b"placelink linkage v1"
DERIVED_KEY_BYTES = 32


class KeyPurpose(Enum):
    """What a derived key is for: the domain separation of the label."""

    BLOOM = "bloom"  # positions of n-grams in a field's Bloom filter
    TOKEN = "token"  # keyed exact-match tokens (HMAC)  # noqa: S105 (a label, not a password)


def derivation_label(purpose: KeyPurpose, policy_id: str, epoch: int, field: str) -> bytes:
    """The HKDF info string; refuses separators inside the parts so labels cannot collide."""
    for name, part in (("policy_id", policy_id), ("field", field)):
        if not part or "/" in part:
            raise KeyMaterialError(
                f"cannot derive a key: {name} is empty or contains '/'",
                fix=f"use a {name} made of letters, digits, '-', '_' or '.'",
            )
    if epoch < 0:
        raise KeyMaterialError("cannot derive a key: the epoch is negative", fix="use epoch >= 0")
    return f"placelink/v1/{purpose.value}/{policy_id}/{epoch}/{field}".encode()


def derive_key(
    secret: LinkageSecret, *, purpose: KeyPurpose, policy_id: str, epoch: int, field: str
) -> bytes:
    """A 32-byte key for one purpose, policy, epoch and field."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=DERIVED_KEY_BYTES,
        salt=HKDF_SALT,
        info=derivation_label(purpose, policy_id, epoch, field),
    )
    return hkdf.derive(secret.value)
