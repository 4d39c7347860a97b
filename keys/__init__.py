"""Key management: the linkage secret and its shares, key derivation, node and DPO keys.

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
from keys.keyfiles import passphrase_from_environment
from keys.sealing import NodeKeys, SealingKey, load_sealing_key, save_node_keys
from keys.secret import LinkageSecret, new_secret, read_secret, rotated, write_secret
from keys.shares import combine_shares, read_share, split_secret, write_share
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
    "NodeKeys",
    "PlacelinkError",
    "PolicyError",
    "SealingKey",
    "SigningKey",
    "StorageError",
    "combine_shares",
    "derive_key",
    "fingerprint",
    "load_sealing_key",
    "load_signing_key",
    "new_secret",
    "passphrase_from_environment",
    "read_secret",
    "read_share",
    "rotated",
    "save_node_keys",
    "save_signing_key",
    "split_secret",
    "verify_signature",
    "write_secret",
    "write_share",
]
