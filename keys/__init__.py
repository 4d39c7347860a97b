"""Key management: the linkage secret, key derivation, node and DPO signing keys.

No other package calls low-level primitives for keys directly; they use these recipes.
"""

from keys.derive import KeyPurpose, derive_key
from keys.errors import (
    AccessError,
    ConfigError,
    InputError,
    KeyMaterialError,
    PlacelinkError,
    PolicyError,
    StorageError,
)
from keys.secret import LinkageSecret, new_secret, read_secret, write_secret
from keys.signing import (
    SigningKey,
    fingerprint,
    load_signing_key,
    save_signing_key,
    verify_signature,
)

__all__ = [
    "AccessError",
    "ConfigError",
    "InputError",
    "KeyMaterialError",
    "KeyPurpose",
    "LinkageSecret",
    "PlacelinkError",
    "PolicyError",
    "SigningKey",
    "StorageError",
    "derive_key",
    "fingerprint",
    "load_signing_key",
    "new_secret",
    "read_secret",
    "save_signing_key",
    "verify_signature",
    "write_secret",
]
