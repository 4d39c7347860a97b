"""Differencing control (linkage.differencing) against brute force: per cell, per total and per
agency pair, the populations of two answers differ by exactly the entities in one and not the
other, and "tiny" means 1 to min_cell-1 of them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.differencing import Keyed, pair_differences, tiny_cells, tiny_pairs, tiny_whole

CELLS, AGENCIES, MIN_CELL = 4, 4, 8
keys = st.lists(st.integers(-1, CELLS - 1), min_size=1, max_size=120)
masks = st.lists(st.integers(0, 2**AGENCIES - 1), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), now=keys)
def test_cells_and_totals_match_brute_force(data: st.DataObject, now: list[int]) -> None:
    before = data.draw(st.lists(st.integers(-1, CELLS - 1), min_size=len(now), max_size=len(now)))
    a, b = np.array(now, dtype=np.int16), np.array(before, dtype=np.int16)
    tiny = tiny_cells(Keyed.cells(a, CELLS), Keyed.cells(b, CELLS), MIN_CELL)
    for cell in range(CELLS):
        delta = sum((x == cell) != (y == cell) for x, y in zip(now, before, strict=True))
        assert tiny[cell] == (0 < delta < MIN_CELL)
    whole = sum((x >= 0) != (y >= 0) for x, y in zip(now, before, strict=True))
    assert tiny_whole(Keyed.cells(a, CELLS), Keyed.cells(b, CELLS), MIN_CELL) == (
        0 < whole < MIN_CELL
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), now=masks)
def test_pairs_match_brute_force(data: st.DataObject, now: list[int]) -> None:
    before = data.draw(st.lists(st.integers(0, 15), min_size=len(now), max_size=len(now)))
    a = Keyed.pairs(np.array(now, dtype=np.uint8), AGENCIES)
    b = Keyed.pairs(np.array(before, dtype=np.uint8), AGENCIES)
    delta = pair_differences(a, b, AGENCIES)
    tiny = tiny_pairs(a, b, AGENCIES, MIN_CELL)
    for i in range(AGENCIES):
        for j in range(AGENCIES):
            bits = (1 << i) | (1 << j)
            expected = sum(
                ((x & bits) == bits) != ((y & bits) == bits)
                for x, y in zip(now, before, strict=True)
            )
            assert delta[i, j] == expected
            assert tiny[i, j] == (0 < expected < MIN_CELL)
