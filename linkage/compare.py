"""Field similarities of candidate pairs: Dice on packed Bloom filters, equality of tokens;
and the agreement levels the Fellegi-Sunter model reads from them.

Dice = 2 |A & B| / (|A| + |B|), computed by the compiled kernel of :mod:`linkage.kernels`
(numpy's popcount where numba is missing), in chunks so that memory stays bounded. A field
missing on either side gives NaN (no evidence) and the level :data:`MISSING`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from linkage.blocking import Pairs
from linkage.classify import FieldModel
from linkage.corpus import EncodedCorpus, FieldColumn
from linkage.kernels import as_words, pair_dice

CHUNK = 262_144
MISSING = -1  # the agreement level of a field missing on either side
# Dice at or above which two copies of a name salted with the other name are taken to share
# their salt. Filters of unrelated salts are unrelated: about half full (docs/formats.md), their
# Dice centres near 0.42; over FEBRL4's candidate pairs of differing postcodes (157,000-216,000
# per secret, ten secrets) given names never reached 0.70 and family names did in 0 to 12 pairs
# (at most 0.744), while a name with a typo under an equal salt keeps 0.7-0.95. Thresholds of
# 0.75 and 0.8 measured F1 0.0001-0.0004 lower (docs/attacks.md).
SALT_AGREEMENT_DICE = 0.7
Floats = npt.NDArray[np.float64]
Levels = npt.NDArray[np.int8]  # (pairs, fields): level index, or MISSING


def popcounts(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Set bits per row of packed bytes."""
    words = np.ascontiguousarray(values).view(np.uint64)
    return np.asarray(np.bitwise_count(words).sum(axis=1, dtype=np.int64))


def dice(
    a: npt.NDArray[np.uint8],
    b: npt.NDArray[np.uint8],
    count_a: npt.NDArray[np.int64],
    count_b: npt.NDArray[np.int64],
) -> Floats:
    """Dice coefficients of row-aligned packed filters (0 where both are empty)."""
    common = np.bitwise_count(
        np.ascontiguousarray(a).view(np.uint64) & np.ascontiguousarray(b).view(np.uint64)
    ).sum(axis=1, dtype=np.int64)
    total = count_a + count_b
    return np.asarray(np.divide(2.0 * common, total, out=np.zeros(len(total)), where=total > 0))


def _field_similarity(
    column: FieldColumn,
    pairs: Pairs,
    counts: npt.NDArray[np.int64] | None,
    words: npt.NDArray[np.uint64] | None = None,
) -> Floats:
    out = np.empty(len(pairs))
    if counts is not None and words is None:
        words = as_words(column.values)
    for start in range(0, len(pairs), CHUNK):
        left, right = pairs[start : start + CHUNK, 0], pairs[start : start + CHUNK, 1]
        if words is not None and counts is not None:
            sim = pair_dice(words, counts, np.ascontiguousarray(left), np.ascontiguousarray(right))
        else:
            sim = np.all(column.values[left] == column.values[right], axis=1).astype(np.float64)
        both = column.present[left] & column.present[right]
        out[start : start + CHUNK] = np.where(both, sim, np.nan)
    return out


def _equal_rows(column: FieldColumn, pairs: Pairs) -> npt.NDArray[np.bool_]:
    """Whether both records hold the field and their stored bytes are equal."""
    words = as_words(column.values)
    out = np.empty(len(pairs), dtype=bool)
    for start in range(0, len(pairs), CHUNK):
        left, right = pairs[start : start + CHUNK, 0], pairs[start : start + CHUNK, 1]
        same = np.all(words[left] == words[right], axis=1)
        out[start : start + CHUNK] = same & column.present[left] & column.present[right]
    return out


def copies_similarity(
    corpus: EncodedCorpus, name: str, pairs: Pairs, copy_similarity: Callable[[str], Floats]
) -> Floats:
    """A field with copies (one per salt): the similarity of its first copy whose salt agrees
    (equal filters of the salt's field) and that both records hold; NaN where none does.
    ``copy_similarity`` gives the Dice of any copy column (``corpus.copy_name``) on ``pairs``.

    Two copies whose salts both agree hold the same value salted twice; the first counts, once.
    A copy salted with the other name too (``copy_partners``) is read by
    :func:`other_name_salted_similarity`. Where the salt's field is not in the corpus (the
    policy does not encode it), a copy counts wherever both records hold it."""
    out = np.full(len(pairs), np.nan)
    partners = corpus.copy_partners.get(name, ())
    for copy, salt_field in enumerate(corpus.salt_fields[name]):
        similarity = copy_similarity(corpus.copy_name(name, copy))
        partner = partners[copy] if copy < len(partners) else ""
        if partner:
            similarity = other_name_salted_similarity(similarity, copy_similarity(partner))
        usable = ~np.isnan(similarity) & np.isnan(out)
        if salt_field in corpus.fields:
            usable &= _equal_rows(corpus.fields[salt_field], pairs)
        out[usable] = similarity[usable]
    return out


def other_name_salted_similarity(own: Floats, partner: Floats) -> Floats:
    """A name's copy salted with the other name (and the postcode), read where the postcodes
    agree, from its Dice (``own``) and that of the other name's copy so salted (``partner``).

    Filters of unrelated salts are unrelated, and their Dice stays under
    :data:`SALT_AGREEMENT_DICE`. So ``own`` at or above it says the salts agree, the other
    names are equal, and ``own`` compares this name; ``partner`` at or above it says the other
    name's salt agrees, which holds this name in full: equal (1.0). Where neither does, one
    name differs and nothing says which: NaN (missing, never a disagreement)."""
    own_agrees = np.nan_to_num(own, nan=-1.0) >= SALT_AGREEMENT_DICE
    partner_agrees = np.nan_to_num(partner, nan=-1.0) >= SALT_AGREEMENT_DICE
    return np.where(own_agrees, own, np.where(partner_agrees & ~np.isnan(own), 1.0, np.nan))


def _memoised(similarity: Callable[[str], Floats]) -> Callable[[str], Floats]:
    """``similarity`` of a copy column, each column computed once (a name's copy is read again
    as the other name's partner)."""
    done: dict[str, Floats] = {}

    def once(column_name: str) -> Floats:
        if column_name not in done:
            done[column_name] = similarity(column_name)
        return done[column_name]

    return once


def similarities(corpus: EncodedCorpus, pairs: Pairs) -> dict[str, Floats]:
    """Per-field similarity of each candidate pair, in [0, 1] or NaN."""
    result = {}

    def dice_of(column_name: str) -> Floats:
        column = corpus.copy_columns[column_name]
        return _field_similarity(column, pairs, popcounts(column.values))

    copy_similarity = _memoised(dice_of)
    for name, column in corpus.fields.items():
        if name in corpus.salt_fields:
            result[name] = copies_similarity(corpus, name, pairs, copy_similarity)
            continue
        counts = popcounts(column.values) if column.encoding == "bloom" else None
        result[name] = _field_similarity(column, pairs, counts)
    return result


class PairComparer:
    """Agreement levels of pairs on some fields; popcounts and word views are made once."""

    def __init__(
        self, corpus: EncodedCorpus, fields: tuple[str, ...], models: dict[str, FieldModel]
    ) -> None:
        self.corpus, self.fields, self.models = corpus, fields, models
        self._prepared: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]] | None] = {}

    def _prepare(self, name: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]] | None:
        if name not in self._prepared:
            column = self.corpus.copy_columns[name]
            bloom = column.encoding == "bloom"
            words = as_words(column.values) if bloom else None
            self._prepared[name] = (popcounts(column.values), words) if words is not None else None
        return self._prepared[name]

    def _similarity(self, name: str, pairs: Pairs) -> Floats:
        prepared = self._prepare(name)
        counts, words = prepared if prepared is not None else (None, None)
        return _field_similarity(self.corpus.copy_columns[name], pairs, counts, words)

    def levels(self, pairs: Pairs) -> Levels:
        out = np.empty((len(pairs), len(self.fields)), dtype=np.int8)
        copy_similarity = _memoised(lambda column_name: self._similarity(column_name, pairs))
        for index, name in enumerate(self.fields):
            if name in self.corpus.salt_fields:
                similarity = copies_similarity(self.corpus, name, pairs, copy_similarity)
            else:
                similarity = self._similarity(name, pairs)
            level = self.models[name].levels(np.nan_to_num(similarity, nan=-1.0))
            out[:, index] = np.where(np.isnan(similarity), MISSING, level)
        return out


def comparison_levels(
    corpus: EncodedCorpus, pairs: Pairs, fields: tuple[str, ...], models: dict[str, FieldModel]
) -> Levels:
    """Agreement level of each pair on each of ``fields`` (one partition's comparison work)."""
    return PairComparer(corpus, fields, models).levels(pairs)
