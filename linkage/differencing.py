"""Differencing control: two answers whose populations differ by a few entities in one cell
would reveal those few by subtraction, however each answer was rounded and suppressed.

Each published cell is a set of entities. A population is kept as a *key* array: for each
entity (or each entity-month contact, for trends) the cell it counts in, or -1. Two keys give,
per cell, the size of the symmetric difference of the two cells' sets; a cell whose difference
from an earlier answer's is between 1 and min_cell-1 is refused (suppressed, then protected by
secondary suppression like any other). Under differential privacy the noise answers this
instead and no cell is refused here.

Scope (documented limit): a query is compared with the other columns of its own table and
with the populations of the same analyst's latest answered queries of the same kind on the same
link run (:data:`HISTORY` populations), not with every query ever asked or with other analysts'.
"""

from __future__ import annotations

import numpy as np

from linkage.hotspot_index import BoolArray, IntArray, agency_bits

HISTORY = 12


def cell_differences(now: IntArray, before: IntArray, cells: int) -> IntArray:
    """Per cell, how many entities are in one answer's cell and not the other's."""
    moved = now != before
    gained, lost = now[moved], before[moved]
    return np.bincount(gained[gained >= 0], minlength=cells) + np.bincount(
        lost[lost >= 0], minlength=cells
    )


def whole_difference(now: IntArray, before: IntArray) -> int:
    """How many entities are in one population and not the other (for a total cell)."""
    return int(np.count_nonzero((now >= 0) != (before >= 0)))


def pair_differences(now: IntArray, before: IntArray, agencies: int) -> IntArray:
    """Per agency pair, the symmetric difference of "known to both" between two populations
    given as agency masks (0 where an entity is not selected)."""
    moved = now != before
    a, b = agency_bits(now[moved], agencies), agency_bits(before[moved], agencies)
    both = a * b
    return np.asarray(a.T @ a + b.T @ b - 2 * (both.T @ both), dtype=np.int64)


def tiny(differences: IntArray, min_cell: int) -> BoolArray:
    """Cells that differ by 1 to min_cell-1 entities."""
    return (differences > 0) & (differences < min_cell)
