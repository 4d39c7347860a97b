"""Tokens of normalised values: padded character n-grams of text, and the parts of a date.

:func:`field_tokens` is the definition: the tokens one value contributes to its field's Bloom
filter. :func:`token_ids` gives the same tokens for many values at once, as a vocabulary and a
matrix of indices into it (one row per value, padded with ``len(vocabulary)``), computed with
numpy for ASCII text and for dates; the result is the same set of tokens per value as
:func:`field_tokens` (a property test checks it), only faster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from policies.linkage_schema import FieldSpec

Value = str | dt.date
Ids = npt.NDArray[np.int64] | npt.NDArray[np.uint16]  # indices (bigrams of ASCII: 16-bit)
_KIND_STRIDE = 100_000  # date token codes: kind * stride + number (numbers stay below it)
_TABLE_LIMIT = 1 << 24  # codes below this are numbered through a table (bigrams: 65,536)
_DATE_KINDS = ("y", "c", "m", "d", "p")
_DATE_WIDTHS = (0, 0, 2, 2, 4)


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


def field_text(spec: FieldSpec, value: str) -> str:
    """The text whose n-grams are a field's tokens (a postcode without its space)."""
    return value.replace(" ", "") if spec.normalise == "postcode" else value


def field_tokens(spec: FieldSpec, value: Value) -> list[str]:
    """The tokens a normalised value contributes to its field's filter."""
    if isinstance(value, dt.date):
        return date_tokens(value)
    return ngrams(field_text(spec, value), spec.ngram)


def token_ids(spec: FieldSpec, values: Sequence[Value]) -> tuple[list[str], Ids]:
    """Vocabulary and per-value token indices (padding index = ``len(vocabulary)``)."""
    kinds = set(map(type, values))
    if kinds == {dt.date}:
        return _date_ids([v for v in values if isinstance(v, dt.date)])
    if kinds == {str}:
        texts = [v for v in values if isinstance(v, str)]
        if spec.normalise == "postcode":  # as field_text
            texts = [v.replace(" ", "") for v in texts]
        joined = "".join(texts)
        if joined.isascii() and "\x00" not in joined:
            return _ascii_ngram_ids(texts, spec.ngram)
    return _generic_ids(spec, values)


def _generic_ids(spec: FieldSpec, values: Sequence[Value]) -> tuple[list[str], Ids]:
    vocabulary: dict[str, int] = {}
    rows = [
        [vocabulary.setdefault(t, len(vocabulary)) for t in field_tokens(spec, v)] for v in values
    ]
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), len(vocabulary), dtype=np.int64)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return list(vocabulary), ids


def _ascii_ngram_ids(texts: list[str], n: int) -> tuple[list[str], Ids]:
    """n-grams of padded ASCII texts as base-256 codes, numbered through ``np.unique``."""
    padded = [f"_{t}_" for t in texts]
    width = max(len(p) for p in padded)
    slots = width - n + 1
    if slots <= 0:
        return [], np.zeros((len(texts), 0), dtype=np.int64)
    chars = np.array(padded, dtype=f"S{width}").view(np.uint8).reshape(len(padded), width)
    if n == 2:
        return _bigram_ids(chars)
    codes = np.zeros((len(padded), slots), dtype=np.uint64)
    for offset in range(n):
        codes = codes * np.uint64(256) + chars[:, offset : offset + slots].astype(np.uint64)
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    valid = np.arange(slots)[None, :] < (lengths - n + 1)[:, None]
    unique, inverse = sorted_codes(codes[valid], 256**n)
    ids = np.full((len(padded), slots), len(unique), dtype=np.int64)
    ids[valid] = inverse
    vocabulary = [int(c).to_bytes(n, "big").decode("ascii") for c in unique]
    return vocabulary, ids


def _bigram_ids(chars: npt.NDArray[np.uint8]) -> tuple[list[str], Ids]:
    """:func:`_ascii_ngram_ids` for bigrams, numbered through a table of all 65,536 codes.
    ``chars`` pads each text with NUL bytes (never in a text: the caller checks), so a bigram
    with a NUL byte is padding, and takes the padding index. The indices are made slot by
    slot (a transposed, C-ordered array returned as its transpose) for the encoder, which ORs
    the token filters of one slot of every text at a time; they are 16-bit (a bigram without
    a NUL byte is one of 255 x 255 < 65,536, so the padding index fits too), a quarter of the
    memory of 64-bit indices for a column of half a million distinct addresses."""
    by_slot = np.ascontiguousarray(chars.T)
    codes = (by_slot[:-1].astype(np.uint16) << 8) | by_slot[1:]
    seen = np.zeros(1 << 16, dtype=np.bool_)
    seen[codes] = True
    seen[:256] = seen[::256] = False  # a NUL byte first or second: padding
    unique = np.flatnonzero(seen)
    number = np.full(1 << 16, len(unique), dtype=np.uint16)
    number[unique] = np.arange(len(unique))
    vocabulary = [int(c).to_bytes(2, "big").decode("ascii") for c in unique]
    return vocabulary, number[codes].T


def sorted_codes(codes: npt.NDArray[np.uint64], bound: int) -> tuple[npt.NDArray[np.uint64], Ids]:
    """``np.unique(codes, return_inverse=True)``, for codes below ``bound``: by a table of
    which codes occur where that is small (bigrams), instead of sorting every code."""
    if bound > _TABLE_LIMIT:
        unique, inverse = np.unique(codes, return_inverse=True)
        return unique, inverse.reshape(-1).astype(np.int64)
    seen = np.zeros(bound, dtype=np.bool_)
    seen[codes] = True
    number = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen).astype(np.uint64), number[codes.astype(np.int64)]


def _date_ids(dates: list[dt.date]) -> tuple[list[str], Ids]:
    """The five date tokens of each date, as codes kind * stride + number."""
    year = np.fromiter((d.year for d in dates), dtype=np.int64, count=len(dates))
    month = np.fromiter((d.month for d in dates), dtype=np.int64, count=len(dates))
    day = np.fromiter((d.day for d in dates), dtype=np.int64, count=len(dates))
    pair = np.minimum(day, month) * 100 + np.maximum(day, month)
    numbers = np.stack([year, year // 10, month, day, pair], axis=1)
    codes = numbers + np.arange(len(_DATE_KINDS), dtype=np.int64)[None, :] * _KIND_STRIDE
    unique, inverse = np.unique(codes, return_inverse=True)
    vocabulary = [_date_token(int(code)) for code in unique]
    return vocabulary, inverse.reshape(codes.shape).astype(np.int64)


def _date_token(code: int) -> str:
    kind, number = divmod(code, _KIND_STRIDE)
    return f"{_DATE_KINDS[kind]}{number:0{_DATE_WIDTHS[kind]}d}"
