"""Tests for the synthetic-town generator (placelink.town)."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from placelink.town import (
    AGENCIES,
    CANONICAL_COLUMNS,
    Town,
    generate_town,
    write_canonical_csv,
    write_town,
)
from placelink.town_lists import FEMALE_NAMES, MALE_NAMES, NICKNAMES

UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][ABD-HJLNP-UW-Z]{2}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_FIELDS = ("date_of_birth", "event_date")


@pytest.fixture(scope="module")
def town() -> Town:
    return generate_town()


def column_of(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec["column"])


def mapping_columns(town: Town, agency: str) -> list[str]:
    return [column_of(spec) for spec in town.mappings[agency]["columns"].values()]


def parse_date(value: str, spec: dict[str, Any]) -> date:
    parsed = datetime.strptime(value, spec["format"]).date()
    pivot = spec.get("century_pivot")
    if pivot is not None:
        yy = parsed.year % 100
        parsed = parsed.replace(year=(2000 if yy <= pivot else 1900) + yy)
    return parsed


def nhs_valid(number: str) -> bool:
    if not re.fullmatch(r"\d{10}", number):
        return False
    check = 11 - sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True)) % 11
    return check != 10 and (0 if check == 11 else check) == int(number[9])


def compact(postcode: str) -> str:
    return postcode.upper().replace(" ", "")


def person_agencies(town: Town) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for agency, _, person in town.truth:
        out[person].add(agency)
    return out


def canonical_by_id(town: Town) -> dict[tuple[str, str], dict[str, str]]:
    return {(a, row["record_id"]): row for a in AGENCIES for row in town.canonical_rows[a]}


def test_same_seed_same_town_different_seed_different() -> None:
    first, again = generate_town(seed=11, people=400), generate_town(seed=11, people=400)
    other = generate_town(seed=12, people=400)
    assert first == again
    assert first.canonical_rows != other.canonical_rows
    assert first.truth != other.truth


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_town(generate_town(seed=3, people=300), tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 2 * len(AGENCIES) + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_areas_and_postcodes_are_valid(town: Town) -> None:
    assert len(town.areas) == 30 == len(set(town.areas))
    assert all(re.fullmatch(r"SB[1-6] [1-5]", area) for area in town.areas)
    seen = 0
    for agency in AGENCIES:
        for row in town.canonical_rows[agency]:
            if row["postcode"]:
                seen += 1
                code = compact(row["postcode"])
                assert UK_POSTCODE.match(code), row["postcode"]
                assert f"{code[:-3]} {code[-3]}" in town.areas
    assert seen > 0.9 * len(town.truth)


def test_variant_postcodes_exist(town: Town) -> None:
    postcodes = [row["postcode"] for a in AGENCIES for row in town.canonical_rows[a]]
    assert any(p and " " not in p for p in postcodes)
    assert any("  " in p for p in postcodes)
    assert any(p != p.upper() for p in postcodes)


def test_truth_matches_records_both_ways(town: Town) -> None:
    truth_keys = [(agency, record_id) for agency, record_id, _ in town.truth]
    assert len(truth_keys) == len(set(truth_keys))
    canonical_keys = [(a, row["record_id"]) for a in AGENCIES for row in town.canonical_rows[a]]
    assert sorted(truth_keys) == sorted(canonical_keys)
    for agency in AGENCIES:
        id_column = column_of(town.mappings[agency]["columns"]["record_id"])
        ids = [row[id_column] for row in town.agency_rows[agency]]
        assert ids == [row["record_id"] for row in town.canonical_rows[agency]]
    assert len(person_agencies(town)) <= town.people


def test_record_id_styles_differ_by_agency(town: Town) -> None:
    patterns = {
        "police": r"P-\d{6}",
        "childrens_services": r"CS\d{6}",
        "housing": r"HSG/20(24|25|26)/\d{4,}",
        "health": r"H\d{7}",
        "school": r"[A-Z]\d{12}",
    }
    for agency, pattern in patterns.items():
        assert all(re.fullmatch(pattern, r["record_id"]) for r in town.canonical_rows[agency])


def test_nhs_numbers_pass_mod11_where_present(town: Town) -> None:
    present = 0
    for agency in AGENCIES:
        for row in town.canonical_rows[agency]:
            if row["nhs_number"]:
                present += 1
                assert nhs_valid(row["nhs_number"].replace(" ", "")), row["nhs_number"]
    assert present > 1000
    assert not nhs_valid("4010232139")  # check digit would be 10
    assert nhs_valid("9434765919")


def test_nhs_coverage_by_agency(town: Town) -> None:
    def share(agency: str) -> float:
        rows = town.canonical_rows[agency]
        return sum(1 for r in rows if r["nhs_number"]) / len(rows)

    assert share("police") < 0.2
    assert share("health") > 0.9
    assert share("school") == 0
    assert "nhs_number" not in town.mappings["school"]["columns"]


def test_rows_carry_exactly_the_mapping_columns(town: Town) -> None:
    expected_canonical = [*CANONICAL_COLUMNS, "event_date"]
    for agency in AGENCIES:
        mapping = town.mappings[agency]
        assert mapping["mapping_version"] == 1 and mapping["source"] == agency
        assert set(mapping["columns"]) <= set(expected_canonical)
        columns = mapping_columns(town, agency)
        assert len(columns) == len(set(columns))
        assert all(list(row) == columns for row in town.agency_rows[agency])
        assert all(list(row) == expected_canonical for row in town.canonical_rows[agency])
        assert len(town.agency_rows[agency]) == len(town.canonical_rows[agency]) > 0


def test_mapping_date_formats_parse_agency_dates(town: Town) -> None:
    for agency in AGENCIES:
        columns = town.mappings[agency]["columns"]
        for field in DATE_FIELDS:
            spec = columns[field]
            pairs = zip(town.agency_rows[agency], town.canonical_rows[agency], strict=True)
            for row, canonical in pairs:
                value = row[spec["column"]]
                if value:
                    assert parse_date(value, spec).isoformat() == canonical[field], value
                else:
                    assert canonical[field] == ""
    assert columns_pivot(town) == {"childrens_services": 30}


def columns_pivot(town: Town) -> dict[str, int]:
    return {
        agency: mapping["columns"]["date_of_birth"]["century_pivot"]
        for agency, mapping in town.mappings.items()
        if "century_pivot" in mapping["columns"]["date_of_birth"]
    }


def test_sex_codes_map_to_canonical(town: Town) -> None:
    for agency in AGENCIES:
        spec = town.mappings[agency]["columns"]["sex"]
        assert sorted(spec["codes"].values()) == ["F", "M"]
        pairs = zip(town.agency_rows[agency], town.canonical_rows[agency], strict=True)
        for row, canonical in pairs:
            assert spec["codes"].get(row[spec["column"]], "") == canonical["sex"]
    assert town.mappings["health"]["columns"]["sex"]["codes"] == {"1": "M", "2": "F"}


def test_canonical_dates_are_iso_and_plausible(town: Town) -> None:
    for agency in AGENCIES:
        for row in town.canonical_rows[agency]:
            event = date.fromisoformat(row["event_date"])
            assert ISO_DATE.match(row["event_date"]) and 2024 <= event.year <= 2026
            if row["date_of_birth"]:
                assert ISO_DATE.match(row["date_of_birth"])
                dob = date.fromisoformat(row["date_of_birth"])
                assert dob.year >= 1931 and dob <= event


def test_school_holds_children_of_school_age(town: Town) -> None:
    rows = [r for r in town.canonical_rows["school"] if r["date_of_birth"]]
    ages = [
        (date.fromisoformat(r["event_date"]) - date.fromisoformat(r["date_of_birth"])).days / 365.25
        for r in rows
    ]
    assert sum(1 for age in ages if 3.9 <= age < 18.1) >= 0.97 * len(ages)


def test_agency_habits_show(town: Town) -> None:
    police = town.canonical_rows["police"]
    assert all(r["given_name"] == r["given_name"].upper() for r in police)
    formal = {n.upper() for n in MALE_NAMES + FEMALE_NAMES}
    nicknames = {n.upper() for names in NICKNAMES.values() for n in names} - formal
    assert any(r["given_name"] in nicknames for r in police)
    addresses = [r["address"] for a in AGENCIES for r in town.canonical_rows[a]]
    assert any(re.match(r"\d+/\d+ ", a) for a in addresses)
    assert any(a.endswith(" Rd") or a.endswith(" RD") for a in addresses)


def test_duplicates_inside_each_agency(town: Town) -> None:
    for agency in AGENCIES:
        counts = Counter(person for a, _, person in town.truth if a == agency)
        assert any(n >= 2 for n in counts.values()), agency


def test_some_person_seen_at_two_postcodes(town: Town) -> None:
    canonical = canonical_by_id(town)
    postcodes: dict[str, set[str]] = defaultdict(set)
    for agency, record_id, person in town.truth:
        if code := compact(canonical[(agency, record_id)]["postcode"]):
            postcodes[person].add(code)
    assert sum(1 for codes in postcodes.values() if len(codes) >= 2) >= 10


def test_agency_reach(town: Town) -> None:
    known = person_agencies(town)
    share = {a: sum(1 for s in known.values() if a in s) / town.people for a in AGENCIES}
    assert 0.45 < share["health"] < 0.75
    assert 0.08 < share["police"] < 0.22
    assert 0.15 < share["housing"] < 0.35
    assert 0.04 < share["childrens_services"] < 0.13
    assert share["health"] > share["housing"] > share["police"] > share["childrens_services"]


def test_hot_spot_shape(town: Town) -> None:
    canonical = canonical_by_id(town)
    area_of: dict[str, str] = {}
    for agency, record_id, person in town.truth:
        code = compact(canonical[(agency, record_id)]["postcode"])
        if code and person not in area_of:
            area_of[person] = f"{code[:-3]} {code[-3]}"
    multi = Counter(
        area_of[p]
        for p, agencies in person_agencies(town).items()
        if len(agencies) >= 3 and p in area_of
    )
    assert any(multi[area] >= 20 for area in town.areas)
    assert sum(1 for area in town.areas if multi[area] < 8) >= 5


def test_write_town_layout_and_contents(town: Town, tmp_path: Path) -> None:
    paths = write_town(town, tmp_path)
    assert set(paths) == set(AGENCIES)
    agencies_dir = tmp_path / "agencies"
    expected = {f"{a}.csv" for a in AGENCIES} | {f"{a}.mapping.yaml" for a in AGENCIES}
    assert {p.name for p in agencies_dir.iterdir()} == expected
    for agency, path in paths.items():
        assert path == agencies_dir / f"{agency}.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == mapping_columns(town, agency)
            assert list(reader) == town.agency_rows[agency]
        text = (agencies_dir / f"{agency}.mapping.yaml").read_text(encoding="utf-8")
        assert yaml.safe_load(text) == town.mappings[agency]
    truth_path = tmp_path / "truth" / "truth.csv"
    with truth_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["agency", "record_id", "person_id"]
        assert [tuple(r.values()) for r in reader] == town.truth
    assert "PER0" not in "".join(p.read_text(encoding="utf-8") for p in paths.values())


def test_write_canonical_csv_header_and_round_trip(tmp_path: Path) -> None:
    rows = [{"record_id": "X1", "event_date": "2024-01-02"}, {"source": "a", "record_id": "X2"}]
    path = tmp_path / "out" / "canonical.csv"
    write_canonical_csv(rows, path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [*CANONICAL_COLUMNS, "event_date", "source"]
        read = list(reader)
    assert read[0]["record_id"] == "X1" and read[0]["source"] == "" and read[1]["source"] == "a"


def test_bad_arguments_rejected() -> None:
    for kwargs in ({"people": 0}, {"areas": 0}, {"areas": 101}, {"seed": -1}):
        with pytest.raises(ValueError):
            generate_town(**kwargs)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    people=st.integers(min_value=1, max_value=120),
    areas=st.integers(min_value=1, max_value=12),
)
def test_generation_never_raises_and_counts_agree(seed: int, people: int, areas: int) -> None:
    town = generate_town(seed=seed, people=people, areas=areas)
    assert (town.seed, town.people, len(town.areas)) == (seed, people, areas)
    assert len(town.truth) == sum(len(rows) for rows in town.canonical_rows.values())
    assert set(town.agency_rows) == set(town.canonical_rows) == set(town.mappings) == set(AGENCIES)
    for agency in AGENCIES:
        assert len(town.agency_rows[agency]) == len(town.canonical_rows[agency])
    assert len({person for _, _, person in town.truth}) <= people
    assert len({(a, r) for a, r, _ in town.truth}) == len(town.truth)
