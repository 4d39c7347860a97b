"""Keyed field encodings: Bloom filters for fuzzy fields, HMAC tokens for exact ones.

Each token (an n-gram of a name, a part of a date) sets ``hashes`` bits whose positions are
independent pseudo-random values from HMAC-SHA512 under the field's derived key ("random
hashing"), never the double-hashing construction whose structure published attacks exploit.
Positions are cached per token: n-grams repeat heavily across records.

Bits are packed most-significant first (``numpy.packbits`` big-endian order).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import struct

import numpy as np
import numpy.typing as npt

from policies.linkage_schema import FieldSpec

TOKEN_BYTES = 16
_POSITION = struct.Struct(">I")


def ngrams(text: str, n: int) -> list[str]:
    """Padded character n-grams: 'ann', 2 -> ['_a', 'an', 'nn', 'n_']."""
    padded = f"_{text}_"
    return [padded[i : i + n] for i in range(len(padded) - n + 1)]


def date_tokens(born: dt.date) -> list[str]:
    """Year, decade, month, day, and the unordered day/month pair, so that a day/month swap
    keeps the year and the pair, and a one-year slip keeps the decade."""
    day, month = f"{born.day:02d}", f"{born.month:02d}"
    pair = "".join(sorted((day, month)))
    return [f"y{born.year}", f"c{born.year // 10}", f"m{month}", f"d{day}", f"p{pair}"]


def field_tokens(spec: FieldSpec, value: str | dt.date) -> list[str]:
    """The tokens a normalised value contributes to its field's filter."""
    if isinstance(value, dt.date):
        return date_tokens(value)
    text = value.replace(" ", "") if spec.normalise == "postcode" else value
    return ngrams(text, spec.ngram)


class BloomEncoder:
    """Encodes one Bloom field under one derived key."""

    def __init__(self, spec: FieldSpec, key: bytes) -> None:
        self.spec = spec
        self._key = key
        self._cache: dict[str, tuple[int, ...]] = {}

    def positions(self, token: str) -> tuple[int, ...]:
        cached = self._cache.get(token)
        if cached is None:
            cached = self._positions(token)
            self._cache[token] = cached
        return cached

    def _positions(self, token: str) -> tuple[int, ...]:
        needed = 4 * self.spec.hashes
        stream, block = b"", 0
        while len(stream) < needed:
            message = block.to_bytes(4, "big") + token.encode("utf-8")
            stream += hmac.new(self._key, message, hashlib.sha512).digest()
            block += 1
        return tuple(
            _POSITION.unpack_from(stream, 4 * i)[0] % self.spec.bits
            for i in range(self.spec.hashes)
        )

    def encode_many(self, values: list[str | dt.date | None]) -> npt.NDArray[np.uint8]:
        """Packed filters, one row per value; a missing value gives an all-zero row."""
        bits = np.zeros((len(values), self.spec.bits), dtype=np.bool_)
        for row, value in enumerate(values):
            if value is None:
                continue
            for token in field_tokens(self.spec, value):
                bits[row, list(self.positions(token))] = True
        return np.packbits(bits, axis=1, bitorder="big")


class TokenEncoder:
    """Keyed exact-match tokens: HMAC-SHA256 truncated to 16 bytes."""

    def __init__(self, spec: FieldSpec, key: bytes) -> None:
        self.spec = spec
        self._key = key

    def encode_many(self, values: list[str | dt.date | None]) -> npt.NDArray[np.uint8]:
        out = np.zeros((len(values), TOKEN_BYTES), dtype=np.uint8)
        for row, value in enumerate(values):
            if value is None:
                continue
            digest = hmac.new(self._key, str(value).encode("utf-8"), hashlib.sha256).digest()
            out[row] = np.frombuffer(digest[:TOKEN_BYTES], dtype=np.uint8)
        return out
