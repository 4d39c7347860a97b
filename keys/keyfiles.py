"""Key files at rest: the one recipe every private key and secret file of placelink follows.

- written with mode 0600 (also when the file already existed with a wider mode);
- encrypted under a passphrase of at least 12 characters; the passphrase comes from an
  environment variable or a prompt, never from argv (:func:`passphrase_from_environment`);
- written or read unencrypted only when the caller says so (``unencrypted_unsafe=True``).

Private keys (Ed25519 signing keys, X25519 sealing keys) are PKCS #8 PEM with
``BestAvailableEncryption`` (scrypt and AES-256-CBC in pyca/cryptography). Any failure to open
one is the same opaque :class:`KeyMaterialError`: a wrong passphrase, a damaged file and a file
of another key type look alike to the caller.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from keys.errors import KeyMaterialError

MIN_PASSPHRASE_CHARS = 12
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (0600), replacing any earlier file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
        handle.write(data)


def read_key_file(
    path: Path, *, what: str, fix: str = "check the path and that this account may read it"
) -> bytes:
    """The bytes of a key file; a missing or unreadable file names the path, nothing else."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(
            f"cannot read the {what} file {path}: {exc.strerror}", fix=fix
        ) from None


def check_passphrase(passphrase: str | None, path: Path, *, unencrypted_unsafe: bool) -> None:
    """Refuse to write a key without a passphrase (unless asked) or with a short one."""
    if passphrase is None and not unencrypted_unsafe:
        raise KeyMaterialError(
            f"no passphrase to encrypt {path}",
            fix="set the passphrase variable (or pass --unencrypted-unsafe, for tests only)",
        )
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyMaterialError(
            f"the passphrase for {path} is shorter than {MIN_PASSPHRASE_CHARS} characters",
            fix="use a longer passphrase, e.g. four random words",
        )


def passphrase_from_environment(
    variable: str, *, prompt: bool = True, confirm: bool = False
) -> str | None:
    """The passphrase in ``variable``, else one typed at a terminal, else None."""
    value = os.environ.get(variable)
    if value:
        return value
    if not prompt or not sys.stdin.isatty():
        return None
    typed = getpass.getpass(f"passphrase ({variable} is not set): ")
    if confirm and getpass.getpass("the same passphrase again: ") != typed:
        raise KeyMaterialError("the two passphrases differ", fix="type the same passphrase twice")
    return typed or None


def save_private_key(
    path: Path,
    private: Ed25519PrivateKey | X25519PrivateKey,
    *,
    passphrase: str | None,
    unencrypted_unsafe: bool = False,
) -> None:
    """Write a private key as PKCS #8 PEM, encrypted under ``passphrase``, mode 0600."""
    check_passphrase(passphrase, path, unencrypted_unsafe=unencrypted_unsafe)
    encryption = (
        NoEncryption() if passphrase is None else BestAvailableEncryption(passphrase.encode())
    )
    write_private_file(path, private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))


def _key_file_error(path: Path) -> KeyMaterialError:
    return KeyMaterialError(
        f"cannot load the key file {path}: wrong passphrase, damaged or not a key",
        fix="check the file and the passphrase variable; make a key with `placelink keys ...`",
    )


def _load_private_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool
) -> PrivateKeyTypes:
    pem = read_key_file(path, what="key")
    encrypted = pem.lstrip().startswith(_ENCRYPTED_PEM)
    if not encrypted and not unencrypted_unsafe:
        raise KeyMaterialError(
            f"the key file {path} is not encrypted",
            fix="re-create it with a passphrase, or pass --unencrypted-unsafe (tests only)",
        )
    if encrypted and not passphrase:
        raise KeyMaterialError(
            f"the key file {path} is encrypted and no passphrase was given",
            fix="set the passphrase environment variable named in docs/key-ceremony.md",
        )
    try:
        secret = passphrase.encode() if encrypted and passphrase else None
        return load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError):
        raise _key_file_error(path) from None


def load_ed25519_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> Ed25519PrivateKey:
    """Read an Ed25519 key written by :func:`save_private_key`; any failure is one error."""
    private = _load_private_key(path, passphrase=passphrase, unencrypted_unsafe=unencrypted_unsafe)
    if not isinstance(private, Ed25519PrivateKey):
        raise _key_file_error(path)
    return private


def load_x25519_key(
    path: Path, *, passphrase: str | None, unencrypted_unsafe: bool = False
) -> X25519PrivateKey:
    """Read an X25519 key written by :func:`save_private_key`; any failure is one error."""
    private = _load_private_key(path, passphrase=passphrase, unencrypted_unsafe=unencrypted_unsafe)
    if not isinstance(private, X25519PrivateKey):
        raise _key_file_error(path)
    return private
