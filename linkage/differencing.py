"""Differencing control: two answers whose populations differ by a few entities in one cell
would reveal those few by subtraction, however each answer was rounded and suppressed.

Each published cell is a set of entities. A population is kept as a *key* array: for each
entity (or each entity-month contact, for trends) the cell it counts in, or -1, with its count
per cell. Two keys give, per cell, the size of the symmetric difference of the two cells'
sets (the counts alone decide most cells; the keys are read only where they cannot). A cell
whose difference from an earlier answer's is between 1 and min_cell-1 is refused: suppressed,
then protected by secondary suppression like any other. Under differential privacy the noise
answers this instead and no cell is refused here.

Scope (documented limit): a query is compared with the other columns of its own table and
with the populations of the same analyst's latest answered queries of the same kind on the same
link run (:data:`HISTORY` populations), not with every query ever asked or with other analysts'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linkage.hotspot_index import BoolArray, IntArray, pair_counts

HISTORY = 12


@dataclass(frozen=True)
class Keyed:
    """A population as a key array (cell per element, -1 for none; for co-occurrence the
    agency mask, 0 for none) and its count per cell (a vector, or the pair matrix)."""

    key: IntArray
    counts: IntArray

    @classmethod
    def cells(cls, key: IntArray, cells: int, within: slice | None = None) -> Keyed:
        """Counts per cell; ``within``: the only span of ``key`` that can hold a cell."""
        return cls(key, _counts(key if within is None else key[within], cells))

    @classmethod
    def pairs(cls, masks: IntArray, agencies: int) -> Keyed:
        return cls(masks, pair_counts(masks, agencies))  # mask 0 has no pairs: no compress


def _counts(key: IntArray, cells: int) -> IntArray:
    """Elements per cell of a key array (-1: none). Shifting -1 into a bin of its own beats a
    boolean compress several times over on a million entries."""
    return np.bincount(key.astype(np.intp) + 1, minlength=cells + 1)[1:]


def _decided(a: IntArray, b: IntArray, min_cell: int) -> tuple[BoolArray, BoolArray]:
    """From the counts alone: cells surely tiny (one side empty, the other 1..min_cell-1),
    and cells whose difference needs the keys (both non-empty, counts closer than min_cell).
    Elsewhere the difference is 0 or at least min_cell."""
    tiny = ((a == 0) != (b == 0)) & (np.maximum(a, b) < min_cell)
    undecided = (a > 0) & (b > 0) & (np.abs(a - b) < min_cell)
    return tiny, undecided


def tiny_cells(now: Keyed, before: Keyed, min_cell: int) -> BoolArray:
    """Cells whose sets of entities differ by 1 to min_cell-1 between two populations,
    computed only where the counts cannot decide: from the elements whose cell changed when
    they are few, else as |A| + |B| - 2|A and B| per cell."""
    tiny, undecided = _decided(now.counts, before.counts, min_cell)
    if undecided.any():
        changed = np.flatnonzero(now.key != before.key)
        if 4 * len(changed) < len(now.key):
            delta = _counts(now.key[changed], len(now.counts))
            delta += _counts(before.key[changed], len(now.counts))
        else:
            both = _counts(np.where(now.key == before.key, now.key, -1), len(now.counts))
            delta = now.counts + before.counts - 2 * both
        tiny |= undecided & (delta > 0) & (delta < min_cell)
    return tiny


def tiny_whole(now: Keyed, before: Keyed, min_cell: int) -> bool:
    """Whether two whole populations (a total cell) differ by 1 to min_cell-1 entities."""
    a, b = np.array([now.counts.sum()]), np.array([before.counts.sum()])
    tiny, undecided = _decided(a, b, min_cell)
    if undecided.any():
        both = int(np.count_nonzero((now.key >= 0) & (before.key >= 0)))
        delta = int(a[0] + b[0]) - 2 * both
        return 0 < delta < min_cell
    return bool(tiny[0])


def tiny_pairs(now: Keyed, before: Keyed, agencies: int, min_cell: int) -> BoolArray:
    """The same per agency pair of two co-occurrence populations."""
    tiny, undecided = _decided(now.counts, before.counts, min_cell)
    if undecided.any():
        delta = pair_differences(now, before, agencies)
        tiny |= undecided & (delta > 0) & (delta < min_cell)
    return tiny


def pair_differences(now: Keyed, before: Keyed, agencies: int) -> IntArray:
    """Per agency pair, the symmetric difference of "known to both" between two populations
    given as agency masks (0 where an entity is not selected): |A| + |B| - 2|A and B|, where
    an entity is in both exactly when the pair's bits are set in the AND of its two masks."""
    both = pair_counts(now.key & before.key, agencies)
    return np.asarray(now.counts + before.counts - 2 * both, dtype=np.int64)
