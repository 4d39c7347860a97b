"""Field similarities of candidate pairs: Dice on packed Bloom filters, equality of tokens.

Dice = 2 |A & B| / (|A| + |B|), computed with numpy's popcount over 64-bit words, in chunks
so that memory stays bounded. A field missing on either side gives NaN (no evidence).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from linkage.blocking import Pairs
from linkage.corpus import EncodedCorpus, FieldColumn

CHUNK = 262_144
Floats = npt.NDArray[np.float64]


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
    column: FieldColumn, pairs: Pairs, counts: npt.NDArray[np.int64] | None
) -> Floats:
    out = np.empty(len(pairs))
    for start in range(0, len(pairs), CHUNK):
        left, right = pairs[start : start + CHUNK, 0], pairs[start : start + CHUNK, 1]
        a, b = column.values[left], column.values[right]
        if counts is not None:
            sim = dice(a, b, counts[left], counts[right])
        else:
            sim = np.all(a == b, axis=1).astype(np.float64)
        both = column.present[left] & column.present[right]
        out[start : start + CHUNK] = np.where(both, sim, np.nan)
    return out


def similarities(corpus: EncodedCorpus, pairs: Pairs) -> dict[str, Floats]:
    """Per-field similarity of each candidate pair, in [0, 1] or NaN."""
    result = {}
    for name, column in corpus.fields.items():
        counts = popcounts(column.values) if column.encoding == "bloom" else None
        result[name] = _field_similarity(column, pairs, counts)
    return result
