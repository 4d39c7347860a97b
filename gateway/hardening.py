"""Hardening of field-level Bloom filters against frequency and pattern-mining attacks.

A linkage service that sees one field's filters sees equal values as equal filters, so it can
align filter frequencies with published name frequencies, and mine which bits each frequent
n-gram sets. Two hardenings, declared per field in the linkage schema
(``tests/integration/test_attacks.py`` measures them; docs/formats.md gives the figures):

- ``salt: birth_year``: every token is salted with the record's year of birth
  (``token + "\\x1f" + year``, the year empty when unknown), so a name gives unrelated filters
  for people born in different years. The attacker then faces the much flatter distribution of
  (name, year) pairs; the price is recall where the year of birth is wrong or missing.
  ``salt: birth_date`` likewise with the ISO date of birth.
- ``salt: [birth_date, postcode_other_name]`` (the default schema): one copy of the filter
  per listed salt, side by side, each salted as above with its own attribute
  (:func:`salt_values`; ``postcode_other_name``: the postcode and the person's other name); a
  copy whose attribute is missing is absent (all-zero), never salted with the empty salt. The
  linkage side compares a copy only where the two records' salts agree, so one wrong attribute
  leaves the other copy.
- ``blip: p``: every bit is flipped with probability p (BLIP, randomised response on bits;
  epsilon = ln((1 - p) / p) per bit). The noise is a keyed pseudo-random function of the
  record's ID (AES-256 under a key derived from the field's Bloom key, over
  ``HMAC-SHA256(key, record_id)`` XOR a block counter): a record re-encoded gets the same noise,
  so publishing again teaches nothing new, and no two records share noise.
- ``xor_fold: true``: the filter's two halves XOR-ed into one of half the bits (Schnell et
  al.'s XOR-folding), so a bit no longer says that a token is present.
- ``balance: true``: the filter concatenated with its complement and the result's bits
  permuted by a permutation keyed by the field's Bloom key (Schnell's balanced Bloom filters):
  every filter has exactly half of its (doubled) bits set, so Hamming weight tells nothing.

The encoder hashes tokens into ``bits`` (:func:`filter_spec`); :func:`transform` then applies
BLIP, folding and balancing in that order (``FieldSpec.stored_bits`` gives the stored width).
Folding and balancing are deterministic functions of the value: equal values still give equal
filters, so neither stops a frequency attack on field-level filters (docs/attacks.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.codebook import CodedColumn, NormalValue
from gateway.prf import aes_block_stream
from policies.linkage_schema import OTHER_NAME, FieldSpec

SALT_SEPARATOR = "\x1f"
_NOISE_LABEL = b"placelink blip v1"
_PERMUTATION_LABEL = b"placelink balance permutation v1"
_ROWS_PER_CHUNK = 8192
U8 = npt.NDArray[np.uint8]


Values = dict[str, list[str | dt.date | None]]
SALT_SOURCES = {
    "birth_date": "date_of_birth",
    "birth_year": "date_of_birth",
    "postcode": "postcode",
    "postcode_other_name": "postcode",
}


def salt_values(salt: str, values: Values, count: int, field: str = "") -> list[str | None]:
    """Each record's salt for ``field``, None where its attribute is missing: ``birth_date``
    the ISO date (1980-02-29), ``birth_year`` four digits, ``postcode`` the normalised postcode
    ("CT9 1AB", or a foreign postcode as the normaliser keeps it), ``postcode_other_name`` the
    postcode, U+001F and the normalised other name (the family name for ``given_name``)."""
    if salt == "postcode_other_name":
        postcodes = salt_values("postcode", values, count)
        others = values.get(OTHER_NAME.get(field, ""), [None] * count)
        return [
            None if p is None or not isinstance(o, str) else salted(p, o)
            for p, o in zip(postcodes, others, strict=True)
        ]
    source = values.get(SALT_SOURCES[salt], [None] * count)
    if salt == "postcode":
        return [v if isinstance(v, str) and v else None for v in source]
    if salt == "birth_date":
        return [b.isoformat() if isinstance(b, dt.date) else None for b in source]
    return [f"{b.year:04d}" if isinstance(b, dt.date) else None for b in source]


def _salt_text(salt: str, value: NormalValue) -> str | None:
    """One part of a salt from a normalised value (None where it cannot be one)."""
    if isinstance(value, dt.date):
        return value.isoformat() if salt == "birth_date" else f"{value.year:04d}"
    return value if isinstance(value, str) and value else None


def salt_parts(salt: str, field: str, column: Callable[[str], CodedColumn]) -> list[CodedColumn]:
    """The parts of each record's salt for ``field``, as code books of strings (None where the
    part is missing), from ``column`` (a normalised field as a code book): ``birth_date`` the
    ISO date, ``birth_year`` four digits, ``postcode`` the normalised postcode,
    ``postcode_other_name`` the postcode and the normalised other name (two parts)."""
    sources = [SALT_SOURCES[salt]]
    if salt == "postcode_other_name":
        sources.append(OTHER_NAME.get(field, ""))
    parts = []
    for source in sources:
        coded = column(source)
        parts.append(CodedColumn([_salt_text(salt, v) for v in coded.values], coded.rows))
    return parts


def salts_for(spec: FieldSpec, values: Values, count: int) -> list[str] | None:
    """The salt of each record for a field with one ``salt`` (None for an unsalted field); a
    missing attribute gives the empty salt (schema version 2's construction, kept as it is)."""
    if spec.salt is None:
        return None
    return [salt or "" for salt in salt_values(spec.salt, values, count, spec.name)]


def salted(token: str, salt: str) -> str:
    return f"{token}{SALT_SEPARATOR}{salt}"


def _noise_key(field_key: bytes) -> bytes:
    return hmac.digest(field_key, _NOISE_LABEL, "sha256")


def _uniform16(key: bytes, record_ids: Sequence[str], words: int) -> npt.NDArray[np.uint16]:
    """``words`` keyed pseudo-random 16-bit words per record (AES-256 as a PRF over distinct
    blocks: each record's HMAC digest XOR a counter)."""
    digests = b"".join(hmac.digest(key, r.encode("utf-8"), "sha256")[:16] for r in record_ids)
    blocks = -(-words // 8)
    stream = aes_block_stream(key, np.frombuffer(digests, dtype=np.uint8), blocks)
    return np.frombuffer(stream, dtype="<u2").reshape(len(record_ids), blocks * 8)[:, :words]


def blip(
    filters: U8,
    present: npt.NDArray[np.bool_],
    spec: FieldSpec,
    field_key: bytes,
    record_ids: Sequence[str],
) -> U8:
    """Each bit of each present filter flipped with probability ``spec.blip`` (missing values
    stay all-zero rows)."""
    if not spec.blip or not len(filters):
        return filters
    key, threshold = _noise_key(field_key), round(spec.blip * 65536)
    out = filters.copy()
    for start in range(0, len(filters), _ROWS_PER_CHUNK):
        rows = record_ids[start : start + _ROWS_PER_CHUNK]
        flips = _uniform16(key, rows, spec.bits) < threshold
        flips &= present[start : start + len(rows), None]
        out[start : start + len(rows)] ^= np.packbits(flips, axis=1, bitorder="big")
    return out


def filter_spec(spec: FieldSpec) -> FieldSpec:
    """The spec the Bloom encoder hashes tokens under: the stored-form transforms off, one copy."""
    return dataclasses.replace(spec, xor_fold=False, balance=False, salts=())


def xor_fold(filters: U8) -> U8:
    """Each packed filter's first half XOR its second half (half the bytes)."""
    half = filters.shape[1] // 2
    return np.ascontiguousarray(filters[:, :half] ^ filters[:, half:])


def permutation(field_key: bytes, bits: int) -> npt.NDArray[np.int64]:
    """A keyed permutation of ``bits`` positions: positions sorted by a keyed PRF of each."""
    key = hmac.digest(field_key, _PERMUTATION_LABEL, "sha256")
    counters = np.arange(bits, dtype=">u8").view(np.uint8).reshape(bits, 8)
    plain = np.zeros((bits, 16), dtype=np.uint8)
    plain[:, 8:] = counters
    # ECB over distinct blocks is AES used as a PRF (a block cipher's definition), not encryption.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    stream = encryptor.update(plain.tobytes()) + encryptor.finalize()
    sort_keys = np.frombuffer(stream, dtype="<u8").reshape(bits, 2)[:, 0]
    return np.argsort(sort_keys, kind="stable").astype(np.int64)


def balance(filters: U8, present: npt.NDArray[np.bool_], field_key: bytes) -> U8:
    """Each present filter followed by its complement, bits permuted by :func:`permutation`
    (exactly half of the doubled bits set); missing values stay all-zero rows."""
    if not len(filters):
        return np.zeros((0, 2 * filters.shape[1]), dtype=np.uint8)
    bits = np.unpackbits(filters, axis=1, bitorder="big")
    doubled = np.concatenate([bits, 1 - bits], axis=1)
    order = permutation(field_key, doubled.shape[1])
    out = np.packbits(doubled[:, order], axis=1, bitorder="big")
    out[~present] = 0
    return out


def transform(
    filters: U8,
    present: npt.NDArray[np.bool_],
    spec: FieldSpec,
    field_key: bytes,
    record_ids: Sequence[str],
) -> U8:
    """The schema's hardening of a field's packed filters (``bits`` wide), in order: BLIP,
    XOR-folding, balancing. Returns ``spec.nbytes``-wide rows."""
    out = blip(filters, present, spec, field_key, record_ids)
    if spec.xor_fold:
        out = xor_fold(out)
    if spec.balance:
        out = balance(out, present, field_key)
    return out
