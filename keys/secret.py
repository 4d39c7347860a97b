"""The linkage secret: made with a CSPRNG, read from a file, never from argv.

A secret file is either a key file as ``placelink keys secret new`` writes it (a small YAML-free
text format: ``placelink-linkage-secret v1`` on the first line, the secret in hex on the second)
or, for scripts, a raw file of at least 32 random bytes.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from keys.errors import KeyMaterialError

MIN_SECRET_BYTES = 32
KEY_FILE_HEADER = "placelink-linkage-secret v1"


@dataclass(frozen=True, repr=False)
class LinkageSecret:
    """The shared secret only gateways hold. Its value never appears in repr or messages."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) < MIN_SECRET_BYTES:
            raise KeyMaterialError(
                f"the linkage secret is shorter than {MIN_SECRET_BYTES} bytes",
                fix="make one with `placelink keys secret new --output FILE`",
            )

    def __repr__(self) -> str:
        return "LinkageSecret(<hidden>)"


def new_secret() -> LinkageSecret:
    """A fresh 32-byte secret from the operating system's CSPRNG."""
    return LinkageSecret(secrets.token_bytes(MIN_SECRET_BYTES))


def write_secret(secret: LinkageSecret, path: Path) -> None:
    """Write a key file readable by its owner only (0600)."""
    text = f"{KEY_FILE_HEADER}\n{secret.value.hex()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
        handle.write(text)


def read_secret(path: Path) -> LinkageSecret:
    """Read a key file or a raw file of at least 32 bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(
            f"cannot read the secret file {path}: {exc.strerror}",
            fix="pass --secret-file with a readable key file",
        ) from None
    header = KEY_FILE_HEADER.encode("ascii")
    if data.startswith(header):
        lines = data.decode("ascii", errors="replace").split()
        try:
            return LinkageSecret(bytes.fromhex(lines[-1]))
        except ValueError:
            raise KeyMaterialError(
                f"the key file {path} is damaged",
                fix="restore it from the key ceremony's shares",
            ) from None
    if len(data) < MIN_SECRET_BYTES:
        raise KeyMaterialError(
            f"the secret file {path} holds fewer than {MIN_SECRET_BYTES} bytes",
            fix="use `head -c 32 /dev/urandom > FILE` or `placelink keys secret new`",
        )
    return LinkageSecret(data)
