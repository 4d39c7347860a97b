"""The columnar hot-spot index (linkage.hotspot_index) against a plain-Python reference of the
query model (linkage.hotspot_query's docstring), on random records: area counts, time windows,
agency combinations, flags, trends and the co-occurrence matrix."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.hotspot_index import HotspotIndex
from linkage.hotspot_query import EntityFilter
from linkage.hotspots import DEFAULT_MEASURES, EntityRecord, raw_table

AGENCIES = ("police", "childrens_services", "housing", "health", "school")
FLAGS = ("asb_incident", "open_case")
AREAS = ("SB1 1", "SB1 2", "SB2 1")
MONTHS = ("2024-01", "2024-07", "2025-06", "2026-12")


@dataclass(frozen=True)
class Row:
    entity: str
    source: str
    area: str | None
    month: str | None
    flags: int


rows_strategy = st.lists(
    st.builds(
        Row,
        entity=st.sampled_from([f"E{i}" for i in range(40)]),
        source=st.sampled_from(AGENCIES),
        area=st.one_of(st.none(), st.sampled_from(AREAS)),
        month=st.one_of(st.none(), st.sampled_from(MONTHS)),
        flags=st.integers(0, 3),
    ),
    max_size=200,
)
filters = st.builds(
    EntityFilter,
    min_agencies=st.integers(1, 4),
    all_of=st.lists(st.sampled_from(AGENCIES[:2]), max_size=1, unique=True).map(tuple),
    none_of=st.lists(st.sampled_from(AGENCIES[3:]), max_size=1, unique=True).map(tuple),
    flags=st.lists(st.sampled_from(FLAGS), max_size=2, unique=True).map(tuple),
    since=st.one_of(st.none(), st.sampled_from(MONTHS[:2])),
    until=st.one_of(st.none(), st.sampled_from(MONTHS[2:])),
)


def build(rows: list[Row]) -> HotspotIndex:
    raw = [(r.entity, r.source, r.area, r.month, r.flags) for r in rows]
    return HotspotIndex.from_rows(raw, agencies=AGENCIES, flags=FLAGS)


def in_window(row: Row, f: EntityFilter) -> bool:
    if f.since is None and f.until is None:
        return True
    return row.month is not None and (f.since or "") <= row.month <= (f.until or "9999")


def reference(rows: list[Row], f: EntityFilter) -> dict[str, tuple[str, set[str]]]:
    """entity -> (area, agencies) of the entities the filter selects."""
    agencies: dict[str, set[str]] = defaultdict(set)
    flags: dict[str, int] = defaultdict(int)
    latest: dict[str, tuple[str, str]] = {}
    for row in (r for r in rows if in_window(r, f)):
        agencies[row.entity].add(row.source)
        flags[row.entity] |= row.flags
        if row.area is not None:
            stamp = (row.month or "", row.area)
            latest[row.entity] = max(latest.get(row.entity, stamp), stamp)
    wanted = sum(1 << FLAGS.index(name) for name in f.flags)
    return {
        e: (latest[e][1], known)
        for e, known in agencies.items()
        if e in latest
        and len(known) >= f.min_agencies
        and set(f.all_of) <= known
        and not set(f.none_of) & known
        and flags[e] & wanted == wanted
    }


@settings(max_examples=150, deadline=None)
@given(rows=rows_strategy, f=filters)
def test_area_counts_match_the_reference(rows: list[Row], f: EntityFilter) -> None:
    index = build(rows)
    counts = index.area_counts(index.select(f))
    expected: dict[str, int] = defaultdict(int)
    for area, _ in reference(rows, f).values():
        expected[area] += 1
    assert {a: int(c) for a, c in zip(index.areas, counts, strict=True) if c} == dict(expected)


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy, f=filters)
def test_trend_counts_each_entity_once_per_month_it_was_in_contact(
    rows: list[Row], f: EntityFilter
) -> None:
    index = build(rows)
    grid = index.trend_counts(index.trend_key(index.select(f), f.since, f.until))
    selected = reference(rows, f)
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        if row.entity in selected and row.month is not None and in_window(row, f):
            expected[(selected[row.entity][0], row.month)].add(row.entity)
    found = {
        (index.areas[a], index.months[m]): int(grid[a, m])
        for a, m in zip(*np.nonzero(grid), strict=True)
    }
    assert found == {cell: len(people) for cell, people in expected.items()}


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy, f=filters)
def test_cooccurrence_counts_pairs_of_agencies(rows: list[Row], f: EntityFilter) -> None:
    index = build(rows)
    matrix = index.cooccurrence(index.select(f))
    selected = reference(rows, f)
    for a, first in enumerate(AGENCIES):
        for b, second in enumerate(AGENCIES):
            both = sum(1 for _, known in selected.values() if {first, second} <= known)
            assert matrix[a, b] == both


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy)
def test_index_agrees_with_the_skeletons_table(rows: list[Row]) -> None:
    records = [EntityRecord(r.entity, r.source, r.area, r.month) for r in rows]
    table = raw_table(records, DEFAULT_MEASURES)
    index = build(rows)
    for measure in DEFAULT_MEASURES:
        f = EntityFilter(min_agencies=measure.min_agencies, all_of=measure.all_of)
        counts = dict(zip(index.areas, index.area_counts(index.select(f)).tolist(), strict=True))
        assert {a: row[measure.name] for a, row in table.items()} == {
            a: counts.get(a, 0) for a in table
        }


def test_an_empty_run_answers_zero_everywhere() -> None:
    index = build([])
    population = index.select(EntityFilter())
    assert index.area_counts(population).tolist() == []
    assert index.cooccurrence(population).shape == (5, 5)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (EntityFilter(), {"SB1 1": 1, "SB2 1": 1}),
        (EntityFilter(min_agencies=2), {"SB1 1": 1}),
        (EntityFilter(all_of=("housing",), none_of=("health",)), {"SB2 1": 1}),
        (EntityFilter(since="2025-01"), {"SB1 1": 1}),
        (EntityFilter(until="2024-12"), {"SB1 2": 1, "SB2 1": 1}),
        (EntityFilter(flags=("asb_incident",)), {"SB1 1": 1}),
    ],
)
def test_known_answers(f: EntityFilter, expected: dict[str, int]) -> None:
    rows = [
        Row("A", "police", "SB1 2", "2024-01", 1),  # moved: latest record in SB1 1
        Row("A", "health", "SB1 1", "2025-06", 0),
        Row("B", "housing", "SB2 1", "2024-07", 0),
    ]
    index = build(rows)
    counts = index.area_counts(index.select(f))
    assert {a: int(c) for a, c in zip(index.areas, counts, strict=True) if c} == expected
