"""Field similarities of candidate pairs: Dice on packed Bloom filters, equality of tokens;
and the agreement levels the Fellegi-Sunter model reads from them.

Dice = 2 |A & B| / (|A| + |B|), computed by the compiled kernel of :mod:`linkage.kernels`
(numpy's popcount where numba is missing), in chunks so that memory stays bounded. A field
missing on either side gives NaN (no evidence) and the level :data:`MISSING`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from linkage.blocking import Pairs
from linkage.classify import FieldModel
from linkage.corpus import EncodedCorpus, FieldColumn
from linkage.kernels import as_words, pair_dice

CHUNK = 262_144
MISSING = -1  # the agreement level of a field missing on either side
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
    corpus: EncodedCorpus, name: str, pairs: Pairs, copy_sims: list[Floats]
) -> Floats:
    """A field with copies (one per salt): the similarity of its first copy whose salt agrees
    (equal filters of the salt's field) and that both records hold; NaN where none does.

    Two copies whose salts both agree hold the same value salted twice; the first counts, once.
    A copy salted with the other name too counts only where the other name's copy so salted is
    equal as well (``copy_partners``): both names equal. Where the salt's field is not in the
    corpus (the policy does not encode it), a copy counts wherever both records hold it."""
    out = np.full(len(pairs), np.nan)
    partners = corpus.copy_partners.get(name, ())
    for copy, similarity in enumerate(copy_sims):
        salt_field = corpus.salt_fields[name][copy]
        usable = ~np.isnan(similarity) & np.isnan(out)
        if salt_field in corpus.fields:
            usable &= _equal_rows(corpus.fields[salt_field], pairs)
        partner = partners[copy] if copy < len(partners) else ""
        if partner:
            usable &= _equal_rows(corpus.copy_columns[partner], pairs)
        out[usable] = similarity[usable]
    return out


def _copy_similarities(corpus: EncodedCorpus, name: str, pairs: Pairs) -> list[Floats]:
    columns = [
        corpus.copy_columns[corpus.copy_name(name, k)] for k in range(len(corpus.salt_fields[name]))
    ]
    return [_field_similarity(c, pairs, popcounts(c.values)) for c in columns]


def similarities(corpus: EncodedCorpus, pairs: Pairs) -> dict[str, Floats]:
    """Per-field similarity of each candidate pair, in [0, 1] or NaN."""
    result = {}
    for name, column in corpus.fields.items():
        if name in corpus.salt_fields:
            copy_sims = _copy_similarities(corpus, name, pairs)
            result[name] = copies_similarity(corpus, name, pairs, copy_sims)
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
        for index, name in enumerate(self.fields):
            if name in self.corpus.salt_fields:
                copies = range(len(self.corpus.salt_fields[name]))
                sims = [self._similarity(self.corpus.copy_name(name, k), pairs) for k in copies]
                similarity = copies_similarity(self.corpus, name, pairs, sims)
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
