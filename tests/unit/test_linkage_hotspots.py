"""Unit tests of the disclosure rule (linkage.disclosure) and hot-spot tables (linkage.hotspots).

The rule (design section 6): 0 stays 0; 1 to min_cell-1 shows as ``*``; min_cell and above is
rounded half-up to the nearest multiple of ``rounding``. A policy may only tighten it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.disclosure import SUPPRESSED, Published, publish_count
from linkage.hotspots import (
    DEFAULT_MEASURES,
    EntityRecord,
    Measure,
    profiles,
    published_table,
    raw_table,
)
from policies.model import DisclosureControl

HOUSE = DisclosureControl()
TIGHT = DisclosureControl(min_cell=10, rounding=10)
BOTH = "police_and_childrens_services"


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, 0),
        *[(c, SUPPRESSED) for c in range(1, 8)],
        (8, 10),
        (9, 10),
        (10, 10),
        (12, 10),
        (13, 15),
        (17, 15),
        (18, 20),
        (22, 20),
        (23, 25),
        (1002, 1000),
        (1003, 1005),
    ],
)
def test_house_rule(count: int, shown: Published) -> None:
    assert (HOUSE.min_cell, HOUSE.rounding) == (8, 5)
    assert publish_count(count, HOUSE) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, 0), (1, SUPPRESSED), (9, SUPPRESSED), (10, 10), (14, 10), (15, 20), (25, 30), (34, 30)],
)
def test_tightened_rule_rounds_half_up(count: int, shown: Published) -> None:
    assert publish_count(count, TIGHT) == shown


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        publish_count(-1, HOUSE)


def test_coarse_rounding_never_shows_people_as_zero() -> None:
    # rounding 20 is a legal tightening; 8 and 9 people must not be published as "none".
    coarse = DisclosureControl(min_cell=8, rounding=20)
    assert publish_count(8, coarse) == SUPPRESSED
    assert publish_count(9, coarse) == SUPPRESSED
    assert publish_count(10, coarse) == 20


controls = st.builds(DisclosureControl, min_cell=st.integers(8, 40), rounding=st.integers(5, 50))


@settings(max_examples=200, deadline=None)
@given(count=st.integers(0, 100_000), control=controls)
def test_published_counts_are_zero_suppressed_or_coarse(
    count: int, control: DisclosureControl
) -> None:
    shown = publish_count(count, control)
    smallest = publish_count(control.min_cell, control)
    if shown == 0:
        assert count == 0
    elif shown == SUPPRESSED:
        assert count > 0
        assert count < control.min_cell or 2 * count < control.rounding
    else:
        assert isinstance(shown, int)
        assert count >= control.min_cell
        assert shown % control.rounding == 0
        assert shown > 0
        # At least what the smallest publishable count (min_cell) shows.
        assert not isinstance(smallest, int) or shown >= smallest
        assert abs(shown - count) <= control.rounding / 2


@settings(max_examples=100, deadline=None)
@given(low=st.integers(0, 10_000), high=st.integers(0, 10_000), control=controls)
def test_publishing_is_monotone_in_the_count(
    low: int, high: int, control: DisclosureControl
) -> None:
    low, high = min(low, high), max(low, high)
    shown_low, shown_high = publish_count(low, control), publish_count(high, control)
    if isinstance(shown_low, int) and isinstance(shown_high, int) and low > 0:
        assert shown_low <= shown_high


# --- hot-spot tables ----------------------------------------------------------------------


def rec(entity: str, source: str, area: str | None, month: str | None = "2025-01") -> EntityRecord:
    return EntityRecord(entity, source, area, month)


def test_entity_known_to_police_and_childrens_services_counts_in_both_measure() -> None:
    records = [
        rec("E1", "police", "SB1 1"),
        rec("E1", "childrens_services", "SB1 1"),
        rec("E2", "police", "SB1 1"),
        rec("E3", "childrens_services", "SB1 1"),
        rec("E3", "housing", "SB1 1"),
    ]
    table = raw_table(records, DEFAULT_MEASURES)
    assert table == {"SB1 1": {"known_to_2plus": 2, "known_to_3plus": 0, BOTH: 1}}


def test_entity_that_moved_counts_only_in_its_latest_area() -> None:
    records = [
        rec("E1", "police", "SB1 1", "2024-03"),
        rec("E1", "health", "SB2 2", "2025-11"),
        rec("E1", "housing", "SB3 3", "2025-02"),
        rec("E1", "school", "SB4 4", None),  # no month counts as oldest
    ]
    table = raw_table(records, DEFAULT_MEASURES)
    assert list(table) == ["SB2 2"]
    assert table["SB2 2"]["known_to_3plus"] == 1


def test_records_without_area_do_not_place_an_entity() -> None:
    records = [
        rec("E1", "police", None, "2026-06"),  # latest, but has no area
        rec("E1", "health", "SB1 1", "2024-01"),
        rec("E2", "police", None),
        rec("E2", "health", None),
    ]
    table = raw_table(records, DEFAULT_MEASURES)
    assert list(table) == ["SB1 1"]  # E2 has no area at all and is left out
    # The area-less record still tells us that police know E1.
    assert table["SB1 1"]["known_to_2plus"] == 1
    assert profiles(records)["E1"].latest == ("2024-01", "SB1 1")


def test_entities_count_once_however_many_records_they_have() -> None:
    records = [rec("E1", "police", "SB1 1", f"2025-{m:02d}") for m in range(1, 13)]
    records += [rec("E1", "childrens_services", "SB1 1")] * 5
    records += [rec("E2", "police", "SB1 1")] * 9
    table = raw_table(records, [Measure("known", min_agencies=1), *DEFAULT_MEASURES])
    assert table["SB1 1"] == {"known": 2, "known_to_2plus": 1, "known_to_3plus": 0, BOTH: 1}


def test_measure_needs_every_named_agency_and_enough_agencies() -> None:
    measure = Measure("m", min_agencies=3, all_of=("police",))
    assert measure.counts(frozenset({"police", "health", "school"}))
    assert not measure.counts(frozenset({"housing", "health", "school"}))
    assert not measure.counts(frozenset({"police", "health"}))


def test_published_table_applies_the_rule_per_cell_and_sorts_areas() -> None:
    records = [rec(f"A{i}", "police", "SB2 1") for i in range(3)]
    records += [rec(f"B{i}", "police", "SB1 1") for i in range(12)]
    records += [rec(f"B{i}", "health", "SB1 1") for i in range(9)]
    table = published_table(records, [Measure("known"), Measure("two", 2)], HOUSE)
    assert table == [
        {"area": "SB1 1", "known": 10, "two": 10},
        {"area": "SB2 1", "known": SUPPRESSED, "two": 0},
    ]


sources = st.sampled_from(["police", "childrens_services", "housing", "health", "school"])
records_strategy = st.lists(
    st.builds(
        EntityRecord,
        entity_id=st.sampled_from([f"E{i}" for i in range(60)]),
        source=sources,
        area=st.one_of(st.none(), st.sampled_from(["SB1 1", "SB1 2", "SB2 1"])),
        month=st.one_of(st.none(), st.sampled_from(["2024-01", "2025-06", "2026-12"])),
    ),
    max_size=300,
)


@settings(max_examples=100, deadline=None)
@given(records=records_strategy, control=controls)
def test_published_table_never_shows_a_small_raw_count(
    records: list[EntityRecord], control: DisclosureControl
) -> None:
    raw = raw_table(records, DEFAULT_MEASURES)
    published = published_table(records, DEFAULT_MEASURES, control)
    assert [row["area"] for row in published] == sorted(raw)
    for row in published:
        for measure in DEFAULT_MEASURES:
            shown = row[measure.name]
            assert shown == publish_count(raw[str(row["area"])][measure.name], control)
            assert shown not in range(1, control.min_cell)
            assert shown == SUPPRESSED or (isinstance(shown, int) and shown % control.rounding == 0)


@settings(max_examples=100, deadline=None)
@given(records=records_strategy)
def test_each_placed_entity_counts_in_exactly_one_area(records: list[EntityRecord]) -> None:
    table = raw_table(records, [Measure("known")])
    placed = {r.entity_id for r in records if r.area is not None}
    assert sum(row["known"] for row in table.values()) == len(placed)
