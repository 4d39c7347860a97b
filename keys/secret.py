"""The linkage secret: made with a CSPRNG, read from a file, never from argv.

A secret carries its key epoch: the epoch its derived keys (:mod:`keys.derive`) are made under.
Files, all read by :func:`read_secret`:

- ``placelink-linkage-secret v2`` (written by ``placelink keys ...``): the header line, then one
  line of JSON. Encrypted (the default): ``{"cipher": "aes-256-gcm", "ciphertext", "epoch",
  "kdf": "scrypt", "n", "r", "p", "salt", "nonce"}``, hex for bytes; the key is scrypt of the
  passphrase (memory-hard: n=2**17, r=8 takes 128 MiB), the header line and every field but the
  ciphertext are authenticated as associated data, so that no field (the epoch included) can be
  changed unnoticed. Unencrypted, only when asked: ``{"epoch", "secret"}``.
- ``placelink-linkage-secret v1``: the header, then the secret in hex (epoch 0).
- for scripts, a raw file of at least 32 random bytes (epoch 0).

Any failure to open an encrypted file is one opaque :class:`KeyMaterialError`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from keys.errors import KeyMaterialError
from keys.keyfiles import check_passphrase, read_key_file, write_private_file

MIN_SECRET_BYTES = 32
KEY_FILE_HEADER = "placelink-linkage-secret v1"
KEY_FILE_HEADER_V2 = "placelink-linkage-secret v2"
SCRYPT_N = 2**17  # 128 MiB with r=8: OWASP's scrypt recommendation
MIN_SCRYPT_N = 2**14  # the floor a file may name (tests use it; a lower one is refused)
MAX_SCRYPT_N = 2**22  # a file cannot make a reader allocate more than 4 GiB
SCRYPT_R, SCRYPT_P = 8, 1
PASSPHRASE_VARIABLE = "PLACELINK_SECRET_PASSPHRASE"  # noqa: S105 (a variable's name)
Passphrase: TypeAlias = str | Callable[[], str | None] | None


@dataclass(frozen=True, repr=False)
class LinkageSecret:
    """The shared secret only gateways hold, and its key epoch. Never in repr or messages."""

    value: bytes
    epoch: int = 0

    def __post_init__(self) -> None:
        if len(self.value) < MIN_SECRET_BYTES:
            raise KeyMaterialError(
                f"the linkage secret is shorter than {MIN_SECRET_BYTES} bytes",
                fix="make one with `placelink keys secret new --output FILE`",
            )
        if self.epoch < 0:
            raise KeyMaterialError("the key epoch is negative", fix="use an epoch >= 0")

    def __repr__(self) -> str:
        return f"LinkageSecret(<hidden>, epoch={self.epoch})"


def new_secret(*, epoch: int = 0) -> LinkageSecret:
    """A fresh 32-byte secret from the operating system's CSPRNG."""
    return LinkageSecret(secrets.token_bytes(MIN_SECRET_BYTES), epoch)


def rotated(secret: LinkageSecret) -> LinkageSecret:
    """A fresh secret for the next epoch: nothing of the old secret carries over."""
    return new_secret(epoch=secret.epoch + 1)


def _scrypt(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase.encode())


def _associated(fields: dict[str, Any]) -> bytes:
    described = {k: v for k, v in fields.items() if k != "ciphertext"}
    return (KEY_FILE_HEADER_V2 + "\n" + json.dumps(described, sort_keys=True)).encode()


def _sealed_fields(secret: LinkageSecret, passphrase: str, scrypt_n: int) -> dict[str, Any]:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    fields: dict[str, Any] = {
        "cipher": "aes-256-gcm",
        "epoch": secret.epoch,
        "kdf": "scrypt",
        "n": scrypt_n,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "nonce": nonce.hex(),
    }
    key = _scrypt(passphrase, salt, scrypt_n)
    fields["ciphertext"] = AESGCM(key).encrypt(nonce, secret.value, _associated(fields)).hex()
    return fields


def write_secret(
    secret: LinkageSecret,
    path: Path,
    *,
    passphrase: str | None,
    unencrypted_unsafe: bool = False,
    scrypt_n: int = SCRYPT_N,
) -> None:
    """Write a v2 key file (0600), encrypted under ``passphrase`` unless told otherwise."""
    check_passphrase(passphrase, path, unencrypted_unsafe=unencrypted_unsafe)
    if not MIN_SCRYPT_N <= scrypt_n <= MAX_SCRYPT_N:
        raise KeyMaterialError(
            "the scrypt cost is out of range",
            fix=f"use n between {MIN_SCRYPT_N} and {MAX_SCRYPT_N}",
        )
    if passphrase is None:
        fields: dict[str, Any] = {"epoch": secret.epoch, "secret": secret.value.hex()}
    else:
        fields = _sealed_fields(secret, passphrase, scrypt_n)
    text = f"{KEY_FILE_HEADER_V2}\n{json.dumps(fields, sort_keys=True)}\n"
    write_private_file(path, text.encode("ascii"))


def _opaque(path: Path) -> KeyMaterialError:
    return KeyMaterialError(
        f"cannot open the key file {path}: wrong passphrase, damaged or not a key file",
        fix=f"check the file and {PASSPHRASE_VARIABLE}; if lost, combine the ceremony's shares",
    )


def _open_sealed(fields: dict[str, Any], path: Path, passphrase: str) -> LinkageSecret:
    try:
        if fields["kdf"] != "scrypt" or fields["cipher"] != "aes-256-gcm":
            raise _opaque(path)
        n, epoch = int(fields["n"]), int(fields["epoch"])
        if not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or (fields["r"], fields["p"]) != (8, 1):
            raise _opaque(path)
        key = _scrypt(passphrase, bytes.fromhex(fields["salt"]), n)
        nonce, sealed = bytes.fromhex(fields["nonce"]), bytes.fromhex(fields["ciphertext"])
        value = AESGCM(key).decrypt(nonce, sealed, _associated(fields))
        return LinkageSecret(value, epoch)
    except (KeyError, TypeError, ValueError, InvalidTag, KeyMaterialError):
        raise _opaque(path) from None


def _read_v2(data: bytes, path: Path, passphrase: Passphrase) -> LinkageSecret:
    try:
        fields = json.loads(data.decode("ascii").split("\n", 1)[1])
        if not isinstance(fields, dict):
            raise ValueError
    except (ValueError, IndexError, UnicodeDecodeError):
        raise _opaque(path) from None
    if "ciphertext" not in fields:  # written so on purpose, as v1 and raw files are
        try:
            return LinkageSecret(bytes.fromhex(fields["secret"]), int(fields["epoch"]))
        except (KeyError, TypeError, ValueError, KeyMaterialError):
            raise _opaque(path) from None
    if callable(passphrase):
        passphrase = passphrase()
    if not passphrase:
        raise KeyMaterialError(
            f"the key file {path} is encrypted and no passphrase was given",
            fix=f"set {PASSPHRASE_VARIABLE} or run at a terminal to be asked",
        )
    return _open_sealed(fields, path, passphrase)


def _read_v1(data: bytes, path: Path) -> LinkageSecret:
    lines = data.decode("ascii", errors="replace").split()
    try:
        return LinkageSecret(bytes.fromhex(lines[-1]))
    except ValueError:
        raise KeyMaterialError(
            f"the key file {path} is damaged",
            fix="restore it from the key ceremony's shares",
        ) from None


def read_secret(path: Path, *, passphrase: Passphrase = None) -> LinkageSecret:
    """Read a v2 key file (encrypted, or plain as written on request), a v1 key file or a raw
    file of at least 32 bytes (the offline ``encode`` contract allows the last two).

    ``passphrase`` may be a function, called only when the file is encrypted (so that a raw
    file never makes anyone type a passphrase)."""
    data = read_key_file(path, what="secret", fix="pass --secret-file with a readable key file")
    if data.startswith(KEY_FILE_HEADER_V2.encode("ascii")):
        return _read_v2(data, path, passphrase)
    if data.startswith(KEY_FILE_HEADER.encode("ascii")):
        return _read_v1(data, path)
    if len(data) < MIN_SECRET_BYTES:
        raise KeyMaterialError(
            f"the secret file {path} holds fewer than {MIN_SECRET_BYTES} bytes",
            fix="use `head -c 32 /dev/urandom > FILE` or `placelink keys secret new`",
        )
    return LinkageSecret(data)
