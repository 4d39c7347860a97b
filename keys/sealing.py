"""Node sealing keys (X25519), kept beside the node's signing key.

A node has two key pairs: Ed25519 to sign its batches (:mod:`keys.signing`) and X25519 to
receive sealed material (for example a re-issued linkage secret) from the ceremony. Both are
key files of the :mod:`keys.keyfiles` recipe. The sealing key's fingerprint is ``x25519:`` + hex
SHA-256 of its raw public key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keys.keyfiles import load_x25519_key, save_private_key, write_private_file
from keys.signing import SigningKey, save_signing_key

SEALING_PREFIX = "x25519:"
NODE_SIGNING_FILE = "node-signing.pem"
NODE_SEALING_FILE = "node-sealing.pem"
NODE_PUBLIC_FILE = "node-public.json"
PASSPHRASE_VARIABLE = "PLACELINK_NODE_PASSPHRASE"  # noqa: S105 (a variable's name)


@dataclass(frozen=True, repr=False)
class SealingKey:
    """An X25519 private key with its public half and fingerprint."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> SealingKey:
        return cls(X25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return SEALING_PREFIX + hashlib.sha256(self.public_raw).hexdigest()

    def __repr__(self) -> str:
        return f"SealingKey({self.fingerprint})"


@dataclass(frozen=True)
class NodeKeys:
    """What ``placelink keys node new`` makes: a signing and a sealing key pair."""

    signing: SigningKey
    sealing: SealingKey

    @classmethod
    def generate(cls) -> NodeKeys:
        return cls(SigningKey.generate(), SealingKey.generate())

    def public_description(self) -> dict[str, str]:
        """What the DPO enrols in the policy (the fingerprint) and the ceremony seals to."""
        return {
            "node_key": self.signing.fingerprint,
            "signing_public_key": self.signing.public_raw.hex(),
            "sealing_key": self.sealing.fingerprint,
            "sealing_public_key": self.sealing.public_raw.hex(),
        }


def save_node_keys(
    folder: Path, keys: NodeKeys, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> dict[str, Path]:
    """Write both private keys (encrypted, 0600) and the public description into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "signing": folder / NODE_SIGNING_FILE,
        "sealing": folder / NODE_SEALING_FILE,
        "public": folder / NODE_PUBLIC_FILE,
    }
    unsafe = unencrypted_unsafe
    save_signing_key(
        paths["signing"], keys.signing, passphrase=passphrase, unencrypted_unsafe=unsafe
    )
    save_private_key(
        paths["sealing"], keys.sealing.private, passphrase=passphrase, unencrypted_unsafe=unsafe
    )
    public = json.dumps(keys.public_description(), indent=2, sort_keys=True) + "\n"
    write_private_file(paths["public"], public.encode("ascii"))
    return paths


def load_sealing_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> SealingKey:
    """Read a sealing key file; any failure is one opaque error."""
    private = load_x25519_key(path, passphrase=passphrase, unencrypted_unsafe=unencrypted_unsafe)
    return SealingKey(private)
