"""Keyed field encodings: Bloom filters for fuzzy fields, HMAC tokens for exact ones.

Each token (an n-gram of a name, a part of a date) sets ``hashes`` bits whose positions are
independent pseudo-random values from HMAC-SHA512 under the field's derived key ("random
hashing"), never the double-hashing construction whose structure published attacks exploit.

A filter is the OR of its tokens' filters, so a batch is encoded column-wise: each distinct
value once, each distinct token once (one HMAC per token per batch), and the filters of the
distinct values assembled with numpy from per-token filters. Bits are packed most-significant
first (``numpy.packbits`` big-endian order).
"""

from __future__ import annotations

import datetime as dt
import hmac
import struct
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from gateway.codebook import distinct
from gateway.hardening import blip, salted
from gateway.prf import KeyedHash
from gateway.tokenise import Ids, date_tokens, field_tokens, ngrams, token_ids
from policies.linkage_schema import FieldSpec

TOKEN_BYTES = 16
_POSITION = struct.Struct(">I")
U8 = npt.NDArray[np.uint8]
MaybeValue = str | dt.date | None

__all__ = [
    "TOKEN_BYTES",
    "BloomEncoder",
    "TokenEncoder",
    "date_tokens",
    "distinct",
    "field_tokens",
    "ngrams",
]


def _table(unique: Sequence[object], encoded: U8) -> U8:
    """Rows for each distinct value: its encoding (``encoded`` holds those of the present
    values, in order), or zeros for the missing value."""
    if None not in unique:
        return encoded
    return np.insert(encoded, list(unique).index(None), 0, axis=0)


def or_rows(table: U8, ids: Ids) -> U8:
    """Row i: the OR of ``table``'s rows ``ids[i]`` (as 64-bit words where the width allows)."""
    width = table.shape[1]
    words = np.ascontiguousarray(table).view(np.uint64) if width % 8 == 0 else table
    out = np.zeros((len(ids), words.shape[1]), dtype=words.dtype)
    for slot in np.ascontiguousarray(ids.T):
        out |= words.take(slot, axis=0)
    return out.view(np.uint8).reshape(len(ids), width)


def _spread(
    book: Sequence[MaybeValue],
    rows: npt.NDArray[np.int64] | None,
    encode_distinct: Callable[[list[str | dt.date]], U8],
) -> U8:
    """Encodings of ``book[rows]`` (of ``book`` without rows): each distinct value once, a
    missing one as zeros."""
    unique, index = distinct(book)
    table = _table(unique, encode_distinct([v for v in unique if v is not None]))
    return np.take(table, index if rows is None else index[rows], axis=0)


class BloomEncoder:
    """Encodes one Bloom field under one derived key."""

    def __init__(self, spec: FieldSpec, key: bytes) -> None:
        self.spec = spec
        self._key = key
        self._cache: dict[str, tuple[int, ...]] = {}

    def positions(self, token: str) -> tuple[int, ...]:
        """The token's bit positions: u32 words of HMAC-SHA512(key, u32(block) || token)."""
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
            stream += hmac.digest(self._key, message, "sha512")
            block += 1
        return tuple(
            _POSITION.unpack_from(stream, 4 * i)[0] % self.spec.bits
            for i in range(self.spec.hashes)
        )

    def position_matrix(self, tokens: Sequence[str]) -> npt.NDArray[np.int64]:
        """Positions of many tokens, one row each, as :meth:`positions` computes them."""
        blocks = -(-4 * self.spec.hashes // 64)  # HMAC-SHA512 gives 64 bytes
        stream = KeyedHash(self._key, "sha512").digests(
            block.to_bytes(4, "big") + token.encode("utf-8")
            for token in tokens
            for block in range(blocks)
        )
        words = np.frombuffer(stream, dtype=">u4").reshape(len(tokens), 16 * blocks)
        return words[:, : self.spec.hashes].astype(np.int64) % self.spec.bits

    def token_filters(self, tokens: Sequence[str]) -> U8:
        """Packed filters, one per token, plus a final all-zero row (the padding token)."""
        bits = np.zeros((len(tokens) + 1, self.spec.bits), dtype=np.bool_)
        if tokens:
            rows = np.repeat(np.arange(len(tokens)), self.spec.hashes)
            bits[rows, self.position_matrix(tokens).ravel()] = True
        return np.packbits(bits, axis=1, bitorder="big")

    def encode_distinct(self, values: Sequence[str | dt.date], salt: str | None = None) -> U8:
        """Packed filters of present values, one row each; tokens salted when ``salt`` is given."""
        out = np.zeros((len(values), self.spec.nbytes), dtype=np.uint8)
        if not values:
            return out
        vocabulary, ids = token_ids(self.spec, values)
        if salt is not None:
            vocabulary = [salted(token, salt) for token in vocabulary]
        return or_rows(self.token_filters(vocabulary), ids)

    def encode_many(self, values: Sequence[MaybeValue], salts: Sequence[str] | None = None) -> U8:
        """Packed filters, one row per value; a missing value gives an all-zero row. With
        ``salts`` (one per value), each value's tokens are salted with its salt."""
        if salts is None:
            return self.encode_book(values)
        pairs = [None if v is None else (v, s) for v, s in zip(values, salts, strict=True)]
        unique_pairs, index = distinct(pairs)
        present = [p for p in unique_pairs if p is not None]
        return np.ascontiguousarray(_table(unique_pairs, self._encode_salted(present))[index])

    def encode_book(
        self, book: Sequence[MaybeValue], rows: npt.NDArray[np.int64] | None = None
    ) -> U8:
        """Packed filters of a code book's values (which may repeat, or be None), spread to
        ``rows`` when given: the filters of ``book[rows[i]]``."""
        return _spread(book, rows, self.encode_distinct)

    def blip(self, filters: U8, present: npt.NDArray[np.bool_], record_ids: Sequence[str]) -> U8:
        """The schema's random bit flips (BLIP), keyed per record; see :mod:`gateway.hardening`."""
        return blip(filters, present, self.spec, self._key, record_ids)

    def _encode_salted(self, pairs: list[tuple[str | dt.date, str]]) -> U8:
        """Filters of distinct (value, salt) pairs, one vectorised pass per salt."""
        filters = np.zeros((len(pairs), self.spec.nbytes), dtype=np.uint8)
        by_salt: dict[str, list[int]] = {}
        for row, (_, salt) in enumerate(pairs):
            by_salt.setdefault(salt, []).append(row)
        for salt, rows in by_salt.items():
            filters[rows] = self.encode_distinct([pairs[r][0] for r in rows], salt)
        return filters


class TokenEncoder:
    """Keyed exact-match tokens: HMAC-SHA256 truncated to 16 bytes."""

    def __init__(self, spec: FieldSpec, key: bytes) -> None:
        self.spec = spec
        self._key = key

    def encode_distinct(self, values: Sequence[str | dt.date]) -> U8:
        digests = KeyedHash(self._key, "sha256").digests(
            map(str.encode, map(str, values)),
            TOKEN_BYTES,  # UTF-8
        )
        return np.frombuffer(digests, dtype=np.uint8).reshape(len(values), TOKEN_BYTES)

    def encode_many(self, values: Sequence[MaybeValue]) -> U8:
        """Tokens, one row per value; a missing value gives an all-zero row."""
        return self.encode_book(values)

    def encode_book(
        self, book: Sequence[MaybeValue], rows: npt.NDArray[np.int64] | None = None
    ) -> U8:
        """Tokens of a code book's values, spread to ``rows`` when given (as BloomEncoder's)."""
        return _spread(book, rows, self.encode_distinct)
