"""Column-wise normalisers: the results of :mod:`gateway.normalise`'s per-value functions, for
many distinct values at once.

The per-value functions are the definition; these are only faster (property tests check that
both agree on every input). Values a fast path cannot take (non-ASCII text, odd separators) go
through the per-value function.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from itertools import compress
from operator import not_

import numpy as np
import numpy.typing as npt

from gateway.normalise import (
    ADDRESS_WORDS,
    FLAT_SLASH,
    InvalidValue,
    flat_words,
    normalise_address,
    normalise_nhs_number,
)


class Invalid:
    """Marks a value that failed validation (the column's report counts it)."""


INVALID = Invalid()
Result = str | None | Invalid
_SEP = "\x00"  # joins values into one text; never in a fast-path value
# fold() on ASCII text after lower-casing: every character but a-z, 0-9 (and the joiner) is a space
_FOLD_ASCII = str.maketrans(
    {chr(c): " " for c in range(1, 128) if not (chr(c).isdigit() or "a" <= chr(c) <= "z")}
)
_FLAT_RUN = re.compile(r"\bflat(?: flat)+\b")  # words: a-z and 0-9 only, single spaces
_NHS_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)


def _one_by_one(function: Callable[[str], str | None], values: list[str]) -> list[Result]:
    out: list[Result] = []
    for value in values:
        try:
            out.append(function(value))
        except InvalidValue:
            out.append(INVALID)
    return out


def _fast(value: str) -> bool:
    return value.isascii() and _SEP not in value


def _fast_flags(values: list[str]) -> list[bool] | None:
    """Which values a fast path can take; None when all can (the common case, found at once)."""
    joined = "".join(values)
    if joined.isascii() and _SEP not in joined:
        return None
    return [_fast(v) for v in values]


def _objects(values: list[Result]) -> npt.NDArray[np.object_]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _merge(fast: list[bool], quick: list[Result], slow: list[Result]) -> list[Result]:
    """The results in the values' order: ``quick`` where ``fast``, else ``slow``."""
    if not slow:
        return quick
    merged = np.empty(len(fast), dtype=object)
    taken = np.array(fast, dtype=np.bool_)
    merged[taken], merged[~taken] = _objects(quick), _objects(slow)
    out: list[Result] = merged.tolist()
    return out


def addresses(values: list[str]) -> list[Result]:
    """:func:`normalise_address` of each value: ASCII values folded as one joined text."""
    fast = _fast_flags(values)
    easy = values if fast is None else [v for v, f in zip(values, fast, strict=True) if f]
    text = _SEP.join(FLAT_SLASH.sub(flat_words, v) if "/" in v else v for v in easy)
    text = text.lower().replace("'", "").translate(_FOLD_ASCII)
    quick: list[Result] = _address_texts(text) if easy else []
    if fast is None:
        return quick
    hard = [v for v, f in zip(values, fast, strict=True) if not f]
    return _merge(fast, quick, _one_by_one(normalise_address, hard))


def _address_texts(text: str) -> list[Result]:
    """:func:`address_from_words` of each folded text in ``text`` (joined by the separator),
    all at once: words spelt out by one ``map``, runs of 'flat' collapsed by one regex."""
    words = text.replace(_SEP, f" {_SEP} ").split()
    joined = " ".join(map(ADDRESS_WORDS.get, words, words))
    if "flat flat" in joined:  # rare: the regex scan only when it can find something
        joined = _FLAT_RUN.sub("flat", joined)
    return [part.strip() or None for part in joined.split(_SEP)]


def nhs_numbers(values: list[str]) -> list[Result]:
    """:func:`normalise_nhs_number` of each value: ten ASCII digits (after dropping spaces and
    dashes) are checked together with numpy."""
    compact = _compact(values)
    ten = np.fromiter(map(len, compact), dtype=np.int64, count=len(compact)) == 10
    ascii_digits = np.fromiter(map(str.isdigit, compact), dtype=np.bool_, count=len(compact))
    ascii_digits &= np.fromiter(map(str.isascii, compact), dtype=np.bool_, count=len(compact))
    fast: list[bool] = (ten & ascii_digits).tolist()
    easy = list(compress(compact, fast))
    quick: list[Result] = []
    if easy:
        raw = np.frombuffer("".join(easy).encode("ascii"), dtype=np.uint8).reshape(-1, 10)
        digits = raw.astype(np.int64) - 48
        check = 11 - (digits[:, :9] @ _NHS_WEIGHTS) % 11
        check[check == 11] = 0
        valid = (check != 10) & (check == digits[:, 9])
        checked = _objects(easy)  # type: ignore[arg-type]
        checked[~valid] = INVALID
        quick = checked.tolist()
    hard = list(compress(values, map(not_, fast)))
    return _merge(fast, quick, _one_by_one(normalise_nhs_number, hard))


def _compact(values: list[str]) -> list[str]:
    """Each value without spaces and dashes (one replace over the joined text where it can)."""
    if not values or _fast_flags(values) is not None:
        return [v.replace(" ", "").replace("-", "") for v in values]
    return _SEP.join(values).replace(" ", "").replace("-", "").split(_SEP)


def iso_dates(values: list[str]) -> list[dt.date | None]:
    """Each value that is plainly an ISO date (ten ASCII characters, YYYY-MM-DD) as that date,
    else None: :func:`parse_date` would read the same date from the former, and the latter
    are left to it."""
    return [_iso_date(v) if len(v) == 10 and v[4] == "-" == v[7] else None for v in values]


def _iso_date(value: str) -> dt.date | None:
    if not (value.isascii() and value[0].isdigit() and value[9].isdigit()):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


COLUMN_NORMALISERS: dict[str, Callable[[list[str]], list[Result]]] = {
    "address": addresses,
    "nhs_number": nhs_numbers,
}
