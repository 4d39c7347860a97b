"""HMAC over many messages under one key, with the key's two hash states computed once.

HMAC (RFC 2104) is ``H((K ^ opad) || H((K ^ ipad) || message))``. ``hmac.digest`` keys both
hashes afresh for every message; an encoder hashes tens of thousands of short messages (NHS
numbers, n-grams) under one field key, so here the states after the two key blocks are made
once and copied per message. The output is HMAC itself, byte for byte (tests check it against
``hmac.digest``, and the known-answer vectors pin every encoding made with it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyedHash:
    """HMAC-``algorithm`` under one key (``algorithm``: a hashlib name, e.g. "sha256")."""

    def __init__(self, key: bytes, algorithm: str) -> None:
        inner = hashlib.new(algorithm)
        if len(key) > inner.block_size:
            key = hashlib.new(algorithm, key).digest()
        padded = key.ljust(inner.block_size, b"\0")
        inner.update(padded.translate(_IPAD))
        outer = hashlib.new(algorithm, padded.translate(_OPAD))
        self._inner, self._outer = inner, outer

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digests(self, messages: Iterable[bytes], size: int | None = None) -> bytes:
        """The digests of many messages, concatenated (each cut to ``size`` bytes if given)."""
        inner_state, outer_state = self._inner, self._outer
        out = []
        for message in messages:
            inner = inner_state.copy()
            inner.update(message)
            outer = outer_state.copy()
            outer.update(inner.digest())
            out.append(outer.digest()[:size])
        return b"".join(out)


def counter_blocks(blocks: int) -> npt.NDArray[np.uint8]:
    """be128(j) for j < ``blocks``, one 16-byte row each (the counter XOR-ed into each block
    of an AES-as-PRF stream)."""
    counters = np.zeros((blocks, 16), dtype=np.uint8)
    counters[:, 12:] = np.arange(blocks, dtype=">u4").view(np.uint8).reshape(blocks, 4)
    return counters


def aes_block_stream(key: bytes, bases: npt.NDArray[np.uint8], blocks: int) -> bytes:
    """AES-256 as a PRF: for each 16-byte row of ``bases``, the encryptions of that row XOR a
    counter j = 0 .. blocks - 1 (big-endian in the last four bytes), rows one after the other.
    Rows that differ give distinct blocks, so the output is a PRF of (row, j)."""
    counters = counter_blocks(blocks)[None, :, :]
    plain = np.ascontiguousarray(bases.reshape(-1, 1, 16) ^ counters).tobytes()
    # ECB over distinct blocks is AES used as a PRF (a block cipher's definition), not encryption.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(plain) + encryptor.finalize()
