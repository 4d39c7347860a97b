"""Bloom filters of salted copies (schema ``salt: [...]``), many records at once.

Each token ``t`` of a copy salted with ``s`` sets ``hashes`` bits at independent pseudo-random
positions of the pair (t, s) under the field's key, as an unsalted token's positions are
independent values of t (random hashing, :mod:`gateway.bloom`). An HMAC per salted token, as
the single-salt construction of schema version 2 makes them (:func:`gateway.hardening.salted`),
costs one keyed hash per token of nearly every record (every record has its own salt), which
made a copy 30 times slower to encode than a plain field. Here the keyed hashes are one per
distinct salt and one per distinct token, and AES-256 (a block cipher is a pseudo-random
permutation, so a PRF on distinct inputs) does the per-pair work in one call:

    D(s) = HMAC-SHA256(k_salt, utf8(s))[:16]       one per distinct salt
    T(t) = HMAC-SHA256(k_token, utf8(t))[:16]      one per distinct token
    block_j(t, s) = D(s) XOR T(t) XOR be128(j),    j = 0, 1, ..., blocks - 1
    stream(t, s) = AES-256-ECB(k_aes, block_0 || block_1 || ...)
    position_i = be_word(stream, i) mod bits,      i < hashes

with 16-bit words where ``bits`` divides 65536 (so the modulus is exact) and 32-bit words
otherwise. Distinct (t, s, j) give distinct blocks but with probability about n^2 / 2^128. The
keys are HMAC-SHA256 of the field key with the labels in :data:`LABELS` and the copy's salt
kind, so the copies of one field never share positions. ``tests/vectors/encoding-v3.json``
pins the bytes; a test checks the vectorised code against a one-pair-at-a-time reading of the
definition above.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.codebook import distinct
from gateway.prf import KeyedHash, aes_block_stream
from gateway.tokenise import token_ids
from policies.linkage_schema import FieldSpec

U8 = npt.NDArray[np.uint8]
LABELS = {
    "salt": b"placelink salted copy v1: salt",
    "token": b"placelink salted copy v1: token",
    "aes": b"placelink salted copy v1: aes",
}
_PAIRS_PER_CHUNK = 1 << 15


def copy_keys(field_key: bytes, salt_kind: str) -> dict[str, bytes]:
    """The three keys of one copy: HMAC-SHA256(field key, label || 0x00 || salt kind)."""
    kind = salt_kind.encode("ascii")
    return {
        name: hmac.digest(field_key, label + b"\0" + kind, "sha256")
        for name, label in LABELS.items()
    }


def word_bytes(spec: FieldSpec) -> int:
    """2 where ``bits`` divides 65536 (a 16-bit word mod bits is exact), else 4."""
    return 2 if 65536 % spec.bits == 0 else 4


def pair_positions(
    keys: dict[str, bytes], spec: FieldSpec, salt_digests: U8, token_digests: U8
) -> npt.NDArray[np.int64]:
    """Positions (pairs, hashes) of (token, salt) pairs given their 16-byte digests, row by
    row (``salt_digests`` and ``token_digests``: (pairs, 16))."""
    size = word_bytes(spec)
    blocks = -(-size * spec.hashes // 16)
    stream = aes_block_stream(keys["aes"], salt_digests ^ token_digests, blocks)
    words = np.frombuffer(stream, dtype=">u2" if size == 2 else ">u4")
    words = words.reshape(len(salt_digests), blocks * 16 // size)[:, : spec.hashes]
    if spec.bits & (spec.bits - 1) == 0:  # a power of two: the modulus is a mask
        return np.asarray(words & (spec.bits - 1), dtype=np.int64)
    return words.astype(np.int64) % spec.bits


def _digests(key: bytes, texts: Sequence[str]) -> U8:
    raw = KeyedHash(key, "sha256").digests((t.encode("utf-8") for t in texts), size=16)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 16)


def copy_filters(
    keys: dict[str, bytes],
    spec: FieldSpec,
    values: Sequence[str | dt.date | None],
    salts: Sequence[str | None],
) -> U8:
    """Packed filters (``bits`` wide), one row per record: the value's tokens salted with the
    record's salt; all-zero where the value or the salt is missing. Each distinct (value,
    salt) pair is encoded once."""
    pairs = [None if v is None or s is None else (v, s) for v, s in zip(values, salts, strict=True)]
    unique, index = distinct(pairs)
    present = [p for p in unique if p is not None]
    filters = np.zeros((len(present), spec.bits // 8), dtype=np.uint8)
    if present:
        vocabulary, ids = token_ids(spec, [value for value, _ in present])
        salt_names, salt_of = np.unique([salt for _, salt in present], return_inverse=True)
        salt_digests = _digests(keys["salt"], [str(s) for s in salt_names])
        token_digests = _digests(keys["token"], vocabulary)
        salt_of = np.asarray(salt_of).reshape(-1)
        for start in range(0, len(present), _PAIRS_PER_CHUNK):
            chunk = ids[start : start + _PAIRS_PER_CHUNK]
            rows, slots = np.nonzero(chunk < len(vocabulary))
            tokens = chunk[rows, slots]
            positions = pair_positions(
                keys, spec, salt_digests[salt_of[start + rows]], token_digests[tokens]
            )
            bits = np.zeros((len(chunk), spec.bits), dtype=np.bool_)
            positions += (rows * spec.bits)[:, None]  # flat indices into ``bits``
            bits.reshape(-1)[positions.ravel()] = True
            filters[start : start + len(chunk)] = np.packbits(bits, axis=1, bitorder="big")
    if None in unique:
        filters = np.insert(filters, unique.index(None), 0, axis=0)
    return np.ascontiguousarray(filters[index])
