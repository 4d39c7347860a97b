"""Bloom filters of salted copies (schema ``salt: [...]``), many records at once.

Each token ``t`` of a copy salted with ``s`` sets ``hashes`` bits at independent pseudo-random
positions of the pair (t, s) under the field's key, as an unsalted token's positions are
independent values of t (random hashing, :mod:`gateway.bloom`). A salt has one part or more
(``birth_date``: the ISO date; ``postcode_other_name``: the postcode, and the other name), and
the keyed hashes are one per distinct value of each part and one per distinct token; AES-256
(a block cipher is a pseudo-random permutation, so a PRF on distinct inputs) does the
per-pair work in one call:

    P_i(x) = HMAC-SHA256(k_salt, u8(i) || utf8(x))[:16]    the salt's part i, value x
    S(s)   = P_0(s_0) XOR P_1(s_1) XOR ...                 a record's salt s = (s_0, s_1, ...)
    T(t)   = HMAC-SHA256(k_token, utf8(t))[:16]            one per distinct token
    block_j(t, s) = S(s) XOR T(t) XOR be128(j),            j = 0, 1, ..., blocks - 1
    stream(t, s) = AES-256-ECB(k_aes, block_0 || block_1 || ...)
    position_i = be_word(stream, i) mod bits,              i < hashes

with words of 1 byte where ``bits`` divides 256, 2 where it divides 65536 (so the modulus is
exact) and 4 otherwise. The P_i (each part its own prefix), and T, are independent PRFs, so
distinct (t, s, j) give distinct blocks but with probability about n^2 / 2^128, and AES makes
the positions of every pair independent of every other's: XOR-ing the parts' digests costs
one keyed hash per distinct postcode and per distinct name instead of one per record. The keys
are HMAC-SHA256 of the field key with the labels in :data:`LABELS` and the copy's salt kind,
so the copies of one field never share positions. ``tests/vectors/encoding-v3.json`` pins the
bytes; a test checks this code against a one-pair-at-a-time reading of the definition above.
The loops over pairs are :mod:`gateway.copy_kernels` (compiled where numba is installed).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.codebook import CodedColumn, NormalValue, distinct
from gateway.copy_kernels import PairLayout, counter_words, pair_blocks, set_bits, use_compiled
from gateway.prf import KeyedHash
from gateway.tokenise import token_ids
from policies.linkage_schema import FieldSpec

U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]
LABELS = {
    "salt": b"placelink salted copy v1: salt",
    "token": b"placelink salted copy v1: token",
    "aes": b"placelink salted copy v1: aes",
}
_PAIRS_PER_RUN = 1 << 15  # pairs per AES call: the run's blocks stay in the CPU's cache


def copy_keys(field_key: bytes, salt_kind: str) -> dict[str, bytes]:
    """The three keys of one copy: HMAC-SHA256(field key, label || 0x00 || salt kind)."""
    kind = salt_kind.encode("ascii")
    return {
        name: hmac.digest(field_key, label + b"\0" + kind, "sha256")
        for name, label in LABELS.items()
    }


def word_bytes(spec: FieldSpec) -> int:
    """Bytes per position word: 1 where ``bits`` divides 256, 2 where it divides 65536, else
    4 (a word modulo ``bits`` is then exact for every power of two up to 65536 bits)."""
    if 256 % spec.bits == 0:
        return 1
    return 2 if 65536 % spec.bits == 0 else 4


def _digests(keyed: KeyedHash, prefix: bytes, texts: Sequence[str]) -> U8:
    raw = keyed.digests((prefix + t.encode("utf-8") for t in texts), size=16)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 16)


def record_salts(key: bytes, parts: Sequence[CodedColumn]) -> tuple[U8, Bools]:
    """S(s) of each record (rows of 16 bytes) and whether it has a salt: every part present
    (a part's code book holds strings, None where the part is missing)."""
    count = len(parts[0].rows)
    keyed = KeyedHash(key, "sha256")
    salts = np.zeros((count, 2), dtype=np.uint64)  # 16 bytes a row, as two words
    held = np.ones(count, dtype=np.bool_)
    for index, part in enumerate(parts):
        missing = np.fromiter((v is None for v in part.values), np.bool_, len(part.values))
        texts = [str(value) for value in part.values if value is not None]
        table = np.zeros((len(part.values), 2), dtype=np.uint64)
        table[~missing] = _digests(keyed, bytes([index]), texts).view(np.uint64)
        salts ^= table.take(part.rows, axis=0)
        held &= ~missing.take(part.rows)
    return salts.view(np.uint8), held


def pair_layout(
    spec: FieldSpec, value: CodedColumn, held: Bools, blocks: int
) -> tuple[list[str], PairLayout]:
    """The tokens of a field's values, and which of them each record with a salt (``held``)
    hashes, in ``blocks`` AES blocks per pair."""
    present = [v for v in value.values if v is not None]
    vocabulary, ids = token_ids(spec, present) if present else ([], np.zeros((0, 0), np.int64))
    book_row = np.full(len(value.values), -1, dtype=np.int32)
    book_row[[i for i, v in enumerate(value.values) if v is not None]] = np.arange(len(present))
    value_row = np.where(held, book_row[value.rows], -1).astype(np.int32)
    tokens_per_value = np.count_nonzero(ids < len(vocabulary), axis=1)
    counts = np.zeros(len(value_row), dtype=np.int64)
    counts[value_row >= 0] = tokens_per_value[value_row[value_row >= 0]]
    offsets = np.zeros(len(value_row) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    layout = PairLayout(
        ids.astype(np.int32),
        value_row,
        offsets,
        len(vocabulary),
        counter_words(blocks),
        compiled=use_compiled(len(value_row)),
    )
    return vocabulary, layout


def _runs(offsets: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Runs of records of at most :data:`_PAIRS_PER_RUN` pairs (or one record, if it alone
    has more): each run's blocks are made, encrypted and read while they are in the cache."""
    count, bounds = len(offsets) - 1, [0]
    while bounds[-1] < count:
        limit = offsets[bounds[-1]] + _PAIRS_PER_RUN
        stop = int(np.searchsorted(offsets, limit, side="right")) - 1
        bounds.append(min(count, max(stop, bounds[-1] + 1)))
    return list(pairwise(bounds))


def coded_copy_filters(
    keys: dict[str, bytes],
    spec: FieldSpec,
    value: CodedColumn,
    parts: Sequence[CodedColumn],
    *,
    out: U8 | None = None,
    column: int = 0,
) -> tuple[U8, Bools]:
    """Packed filters (``bits`` wide), one row per record, of a field's values (a code book)
    salted with its salt's ``parts`` (code books of strings); and which records hold a copy.
    A record holds none (an all-zero row) where the value or any part of the salt is missing.
    With ``out`` (all zero there), the filters are written into it from byte ``column`` on
    (the field's row of copies: no array of its own per copy), and ``out`` is returned."""
    count = len(value.rows)
    salts, held = record_salts(keys["salt"], parts)
    held &= value.present()
    word = word_bytes(spec)
    blocks = -(-word * spec.hashes // 16)
    vocabulary, layout = pair_layout(spec, value, held, blocks)
    tokens = np.zeros((len(vocabulary), 16), dtype=np.uint8)
    if vocabulary:
        tokens = _digests(KeyedHash(keys["token"], "sha256"), b"", vocabulary)
    filters = np.zeros((count, spec.bits // 8), dtype=np.uint8) if out is None else out
    runs = _runs(layout.offsets)
    longest = max((int(layout.offsets[b] - layout.offsets[a]) for a, b in runs), default=0)
    plain = np.empty((longest * blocks, 2), dtype=np.uint64)
    plain_bytes = plain.reshape(-1).view(np.uint8)
    stream = np.empty(longest * blocks * 16 + 15, dtype=np.uint8)  # update_into's margin
    # ECB over distinct blocks is AES used as a PRF (a block cipher's definition), not encryption.
    aes = Cipher(algorithms.AES(keys["aes"]), modes.ECB()).encryptor()  # noqa: S305
    for start, stop in runs:
        written = pair_blocks(salts, tokens, layout, start, stop, plain)
        if written:
            aes.update_into(plain_bytes[: 16 * written].data, stream.data)
        set_bits(stream, layout, start, stop, stride=16 * blocks, hashes=spec.hashes,
                 word=word, bits=spec.bits, out=filters, column=column)  # fmt: skip
    return filters, held


def copy_filters(
    keys: dict[str, bytes],
    spec: FieldSpec,
    values: Sequence[str | dt.date | None],
    salts: Sequence[tuple[str, ...] | None],
) -> U8:
    """:func:`coded_copy_filters` of per-record lists: each record's value, and its salt as a
    tuple of parts (None where the salt is missing; every tuple of one length)."""
    width = max((len(s) for s in salts if s is not None), default=1)
    parts = [CodedColumn.of([None if s is None else s[i] for s in salts]) for i in range(width)]
    book: tuple[list[NormalValue], npt.NDArray[np.int64]] = distinct(list(values))
    filters, _ = coded_copy_filters(keys, spec, CodedColumn(*book), parts)
    return filters
