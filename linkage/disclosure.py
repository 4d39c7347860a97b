"""The disclosure rule applied to every published count.

House default (a policy may only tighten it): 0 stays 0; 1 to min_cell-1 is suppressed and
shown as ``*``; min_cell and above is rounded half-up to the nearest multiple of ``rounding``
(with the defaults 8 and 9 show as 10, 12 as 10, 13 as 15). Only a true 0 shows as 0: under a
policy whose rounding exceeds twice min_cell, a count that would round to 0 is suppressed too.

Secondary suppression (:func:`protect`): where a total is published beside its parts, a lone
suppressed cell among them is the total minus the others; so a second cell is suppressed (the
smallest non-zero published part, else the total) until no sum holds exactly one suppressed
cell. Cells a differencing check refuses are suppressed first, and protected the same way. A
published 0 is always a true 0 (without noise): zeros are never chosen as secondary cells.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from policies.model import DisclosureControl

SUPPRESSED = "*"
Published = int | str
Cell = TypeVar("Cell", bound=Hashable)


def publish_count(count: int, control: DisclosureControl) -> Published:
    """The published form of one true count."""
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count == 0:
        return 0
    rounded = control.rounding * ((2 * count + control.rounding) // (2 * control.rounding))
    if count < control.min_cell or rounded == 0:
        return SUPPRESSED  # a count of people never publishes as 0 (rounding > 2 * count)
    return rounded


class Treatment(StrEnum):
    """How one published figure was treated; every figure the service shows carries one."""

    ZERO = "zero"  # a true 0 (or, under noise, a noisy count of 0 or less)
    ROUNDED = "rounded"  # min_cell or more, rounded to the policy's base
    SMALL = "suppressed-small"  # 1 to min_cell-1 (primary suppression)
    SECONDARY = "suppressed-secondary"  # would let a total or difference reveal a small cell
    DIFFERENCING = "suppressed-differencing"  # differs by a few entities from an earlier query


@dataclass(frozen=True)
class SumConstraint(Generic[Cell]):
    """``whole`` is published beside ``parts`` and equals their sum (a total row or column)."""

    parts: tuple[Cell, ...]
    whole: Cell


@dataclass(frozen=True)
class Protected:
    value: Published
    treatment: Treatment


def _primary(count: int, control: DisclosureControl) -> Protected:
    value = publish_count(count, control)
    if value == SUPPRESSED:
        return Protected(value, Treatment.SMALL)
    return Protected(value, Treatment.ZERO if value == 0 else Treatment.ROUNDED)


def _second_cell(
    constraint: SumConstraint[Cell], cells: dict[Cell, Protected], counts: Mapping[Cell, int]
) -> Cell | None:
    """The cell to suppress beside a lone suppressed one: the smallest non-zero published part,
    else the whole; None when every other member is a published 0 (then the lone cell is a
    refused whole of zeros, which is 0 and reveals nothing)."""
    open_parts = [p for p in constraint.parts if cells[p].value not in (SUPPRESSED, 0)]
    if open_parts:
        return min(open_parts, key=lambda p: counts[p])
    if cells[constraint.whole].value != SUPPRESSED:
        return constraint.whole
    return None


def protect(
    counts: Mapping[Cell, int],
    control: DisclosureControl,
    *,
    constraints: Sequence[SumConstraint[Cell]] = (),
    refused: Collection[Cell] = (),
) -> dict[Cell, Protected]:
    """Publish every cell under the rule, then suppress ``refused`` cells (differencing), then
    add secondary suppressions until no constraint holds exactly one suppressed cell (a lone
    suppressed cell would be its whole minus the other parts)."""
    cells = {cell: _primary(count, control) for cell, count in counts.items()}
    for cell in refused:
        cells[cell] = Protected(SUPPRESSED, Treatment.DIFFERENCING)
    changed = True
    while changed:
        changed = False
        for constraint in constraints:
            members = (*constraint.parts, constraint.whole)
            if sum(cells[m].value == SUPPRESSED for m in members) == 1:
                chosen = _second_cell(constraint, cells, counts)
                if chosen is not None:
                    cells[chosen] = Protected(SUPPRESSED, Treatment.SECONDARY)
                    changed = True
    return cells
