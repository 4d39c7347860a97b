"""Splitting the linkage secret into n shares, any t of which rebuild it (Shamir).

The arithmetic is Trezor's ``shamir-mnemonic`` (SLIP-39), not ours: each share is a list of 20
to 33 English words a custodian can write on paper and read back over no network; a checksum
per share (RS1024) catches a mistyped word, and a digest over the shares catches a share from
another split. Fewer than t shares reveal nothing about the secret.

What is split is the epoch (4 bytes, big-endian) followed by the secret, so that the epoch
cannot be separated from the secret it belongs to. Share files are text, written 0600::

    placelink-linkage-share v1
    share 2 of 5, any 3 rebuild the secret
    <the words>

Any failure to combine (too few shares, a damaged word, shares of two splits) is one opaque
:class:`KeyMaterialError`.
"""

from __future__ import annotations

from pathlib import Path

import shamir_mnemonic

from keys.errors import KeyMaterialError
from keys.keyfiles import read_key_file, write_private_file
from keys.secret import LinkageSecret

SHARE_FILE_HEADER = "placelink-linkage-share v1"
MIN_THRESHOLD = 2  # one share alone must never be the secret
MAX_SHARES = 16  # SLIP-39's limit per group
_EPOCH_BYTES = 4
_ITERATION_EXPONENT = 0  # SLIP-39's own passphrase layer is unused: the shares are the secret


def _check_counts(threshold: int, count: int) -> None:
    if not MIN_THRESHOLD <= threshold <= count <= MAX_SHARES:
        raise KeyMaterialError(
            f"cannot split into {count} shares with threshold {threshold}",
            fix=f"use {MIN_THRESHOLD} <= threshold <= shares <= {MAX_SHARES}, e.g. 3 of 5",
        )


def split_secret(secret: LinkageSecret, *, threshold: int, shares: int) -> list[str]:
    """``shares`` mnemonics (space-separated words), any ``threshold`` of which rebuild it."""
    _check_counts(threshold, shares)
    if len(secret.value) % 2 or secret.epoch >= 2 ** (8 * _EPOCH_BYTES):
        raise KeyMaterialError(
            "this secret cannot be split (odd length or epoch out of range)",
            fix="make a new one with `placelink keys secret new` and split that",
        )
    master = secret.epoch.to_bytes(_EPOCH_BYTES, "big") + secret.value
    groups = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, shares)], master, iteration_exponent=_ITERATION_EXPONENT
    )
    mnemonics: list[str] = groups[0]
    return mnemonics


def _combine_error() -> KeyMaterialError:
    return KeyMaterialError(
        "cannot rebuild the secret from these shares",
        fix="bring at least the threshold of shares, from one split, each copied exactly",
    )


def combine_shares(mnemonics: list[str]) -> LinkageSecret:
    """The secret (and its epoch) from at least the threshold of one split's shares."""
    words = [" ".join(m.split()) for m in mnemonics]
    if len(set(words)) != len(words):
        raise _combine_error()
    try:
        groups = shamir_mnemonic.decode_mnemonics(words)  # every checksum; one split's shares
        if len(groups) != 1:
            raise _combine_error()
        threshold = next(iter(groups.values())).member_threshold()
        master = shamir_mnemonic.combine_mnemonics(words[:threshold])
        epoch = int.from_bytes(master[:_EPOCH_BYTES], "big")
        return LinkageSecret(master[_EPOCH_BYTES:], epoch)
    except (shamir_mnemonic.MnemonicError, ValueError, KeyError, IndexError, KeyMaterialError):
        raise _combine_error() from None


def write_share(path: Path, mnemonic: str, *, number: int, count: int, threshold: int) -> None:
    """One custodian's share file (0600)."""
    text = (
        f"{SHARE_FILE_HEADER}\n"
        f"share {number} of {count}, any {threshold} rebuild the secret\n"
        f"{mnemonic}\n"
    )
    write_private_file(path, text.encode("ascii"))


def read_share(path: Path) -> str:
    """The words of a share file, or the words alone typed into a file by a custodian."""
    data = read_key_file(path, what="share")
    lines = [line.strip() for line in data.decode("ascii", errors="replace").splitlines()]
    if lines and lines[0] == SHARE_FILE_HEADER:
        lines = lines[2:]
    return " ".join(" ".join(lines).split())
