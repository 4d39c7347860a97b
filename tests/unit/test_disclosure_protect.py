"""Secondary suppression (linkage.disclosure.protect): invariants on random tables with totals.

Invariants: every published figure is 0, ``*`` or a positive multiple of the rounding base;
every count of 1 to min_cell-1 is ``*``; a published 0 is a true 0; no row or column total
leaves exactly one suppressed cell (which would be the total minus the published others);
refused (differencing) cells stay suppressed; and a brute-force attacker who knows the
published table and the rule cannot pin any suppressed cell to one value from a single sum.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.disclosure import SUPPRESSED, Protected, SumConstraint, Treatment, protect
from policies.model import DisclosureControl

HOUSE = DisclosureControl()
controls = st.builds(DisclosureControl, min_cell=st.integers(8, 20), rounding=st.integers(5, 10))
Cell = tuple[int, int]
TOTAL = -1


def grid_with_totals(
    counts: list[list[int]],
) -> tuple[dict[Cell, int], list[SumConstraint[Cell]]]:
    """A table with a total row and a total column (and the grand total)."""
    rows, cols = len(counts), len(counts[0])
    cells = {(r, c): counts[r][c] for r in range(rows) for c in range(cols)}
    for r in range(rows):
        cells[(r, TOTAL)] = sum(counts[r])
    for c in range(cols):
        cells[(TOTAL, c)] = sum(counts[r][c] for r in range(rows))
    cells[(TOTAL, TOTAL)] = sum(map(sum, counts))
    constraints = [
        SumConstraint(tuple((r, c) for c in range(cols)), (r, TOTAL)) for r in range(rows)
    ]
    constraints += [
        SumConstraint(tuple((r, c) for r in range(rows)), (TOTAL, c)) for c in range(cols)
    ]
    constraints.append(SumConstraint(tuple((r, TOTAL) for r in range(rows)), (TOTAL, TOTAL)))
    constraints.append(SumConstraint(tuple((TOTAL, c) for c in range(cols)), (TOTAL, TOTAL)))
    return cells, constraints


small_or_large = st.one_of(st.integers(0, 0), st.integers(1, 7), st.integers(8, 60))
tables = st.integers(1, 5).flatmap(
    lambda cols: st.lists(
        st.lists(small_or_large, min_size=cols, max_size=cols), min_size=1, max_size=6
    )
)


def check_published(
    cells: dict[Cell, Protected], counts: dict[Cell, int], c: DisclosureControl
) -> None:
    for cell, shown in cells.items():
        true = counts[cell]
        if shown.value == SUPPRESSED:
            assert shown.treatment != Treatment.ROUNDED
            continue
        assert isinstance(shown.value, int)
        if shown.value == 0:
            assert true == 0, "a published 0 is a true 0"
        else:
            assert shown.value % c.rounding == 0 and true >= c.min_cell
        if 1 <= true < c.min_cell:
            raise AssertionError("a small count was published")


@settings(max_examples=300, deadline=None)
@given(table=tables, control=controls, data=st.data())
def test_secondary_suppression_invariants(
    table: list[list[int]], control: DisclosureControl, data: st.DataObject
) -> None:
    counts, constraints = grid_with_totals(table)
    refused = data.draw(st.sets(st.sampled_from(sorted(counts)), max_size=2))
    cells = protect(counts, control, constraints=constraints, refused=refused)
    check_published(cells, counts, control)
    for cell in refused:
        assert cells[cell].value == SUPPRESSED
    for constraint in constraints:
        members = (*constraint.parts, constraint.whole)
        if sum(cells[m].value == SUPPRESSED for m in members) == 1:
            # only a suppressed total whose parts are all published zeros: it is 0 anyway
            assert cells[constraint.whole].value == SUPPRESSED and counts[constraint.whole] == 0
            assert all(cells[p].value == 0 for p in constraint.parts)


def feasible(shown: Protected, control: DisclosureControl, limit: int, whole: bool) -> range:
    """The true counts an attacker who sees the published value and its treatment cannot rule
    out (the narrowest sets the rule allows: the attacker is given every advantage)."""
    if shown.treatment == Treatment.SMALL:
        return range(1, control.min_cell)
    if shown.treatment == Treatment.SECONDARY:
        return range(1 if whole else control.min_cell, limit + 1)
    if shown.treatment == Treatment.DIFFERENCING:
        return range(0, limit + 1)
    value = int(shown.value)
    if value == 0:
        return range(0, 1)
    low = max(control.min_cell, value - control.rounding // 2)
    return range(low, value + control.rounding // 2 + 1)


@settings(max_examples=150, deadline=None)
@given(
    table=st.integers(2, 3).flatmap(
        lambda cols: st.lists(
            st.lists(small_or_large, min_size=cols, max_size=cols), min_size=2, max_size=3
        )
    )
)
def test_no_suppressed_cell_is_pinned_by_one_sum(table: list[list[int]]) -> None:
    counts, constraints = grid_with_totals(table)
    cells = protect(counts, HOUSE, constraints=constraints)
    limit = max(counts.values()) + 5
    wholes = {c.whole for c in constraints}
    for constraint in constraints:
        hidden = [m for m in (*constraint.parts, constraint.whole) if cells[m].value == SUPPRESSED]
        for target in hidden:
            others = [m for m in (*constraint.parts, constraint.whole) if m != target]
            options = [feasible(cells[m], HOUSE, limit, m in wholes) for m in others]
            solutions = set()
            for combo in itertools.product(*options):
                values = dict(zip(others, combo, strict=True))
                if target == constraint.whole:
                    solutions.add(sum(values[p] for p in constraint.parts))
                else:
                    rest = sum(values[p] for p in constraint.parts if p != target)
                    solutions.add(values[constraint.whole] - rest)
                if len(solutions) > 1:
                    break
            assert len(solutions) > 1, "a suppressed cell is recoverable from one sum"


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        # one small cell beside a published total: the smallest published part goes too
        ([3, 20, 40], [SUPPRESSED, SUPPRESSED, 40, 65]),
        # two small cells already protect each other
        ([3, 4, 40], [SUPPRESSED, SUPPRESSED, 40, 45]),
        # the only other non-zero part is the total itself
        ([0, 9, 0], [0, 10, 0, 10]),
        ([0, 5, 0], [0, SUPPRESSED, 0, SUPPRESSED]),
        # nothing small: nothing suppressed
        ([0, 12, 33], [0, 10, 35, 45]),
    ],
)
def test_known_answers_for_one_column_with_total(column: list[int], expected: list[object]) -> None:
    counts = {i: c for i, c in enumerate(column)}
    counts[len(column)] = sum(column)
    cells = protect(
        counts, HOUSE, constraints=[SumConstraint(tuple(range(len(column))), len(column))]
    )
    assert [cells[i].value for i in range(len(column) + 1)] == expected


def test_a_refused_cell_beside_zeros_takes_the_total_with_it() -> None:
    counts = {0: 0, 1: 30, 2: 30}
    cells = protect(counts, HOUSE, constraints=[SumConstraint((0, 1), 2)], refused={1})
    assert (cells[1].treatment, cells[2].treatment) == (
        Treatment.DIFFERENCING,
        Treatment.SECONDARY,
    )
    assert cells[0].value == 0
