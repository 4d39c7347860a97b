"""Seeded synthetic town ("Seabrook") seen through five local agencies.

The record-linkage demo, tests and benchmarks need data that behaves like real
multi-agency extracts but describes nobody. This module builds a fictional town in the
made-up postcode area "SB": postcode sectors ("SB3 2") with streets and valid-format
postcodes ("SB3 2DL"), households of adults and children, and people with UK-style names,
dates of birth and NHS numbers that pass the mod-11 check. Deprivation concentrates in a
few areas and household need follows it; each agency (police, children's services,
housing, health, school) is likelier to know a person the higher their need, and the
agencies are correlated through that need and through police involvement.

During 2024-2026 some people move house and some women change family name; each record
carries the agency's last-contact date and shows the address and name true on that date.
Each agency writes its records with its own column names, record ids, date and sex
formats and data-quality habits (typos, nicknames, case, missing values, day/month swaps,
year slips, postcode and address variants, duplicates); see :mod:`placelink.town_lists`.

:func:`generate_town` returns a :class:`Town`: each agency's rows in its own columns, the
same rows with canonical column names and ISO dates, a YAML-ready column mapping per
agency, and the ground truth (agency, record id, person id). :func:`write_town` writes the
agency files and, kept apart, the truth. The same seed and arguments give the same town,
byte for byte.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gateway.mapping import CANONICAL_COLUMNS as GATEWAY_CANONICAL_COLUMNS
from placelink import town_lists as lists
from placelink.town_habits import AgencyRecord, add_years, dirty, pick
from placelink.town_lists import AgencyProfile

AGENCIES: tuple[str, ...] = ("police", "childrens_services", "housing", "health", "school")
CANONICAL_COLUMNS: tuple[str, ...] = GATEWAY_CANONICAL_COLUMNS

POSTCODE_AREA = "SB"
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
PERIOD_START = date(2024, 1, 1)
PERIOD_END = date(2026, 12, 31)
MAX_AREAS = 100
_SECTORS_PER_DISTRICT = 5
_DATE_FIELDS = ("date_of_birth", "event_date")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

Rng = np.random.Generator
_NAMES = {"M": lists.MALE_NAMES, "F": lists.FEMALE_NAMES}
_MODERN = {sex: tuple(n for n in ns if n in lists.MODERN_NAMES) for sex, ns in _NAMES.items()}
_CLASSIC = {sex: tuple(n for n in ns if n not in lists.MODERN_NAMES) for sex, ns in _NAMES.items()}


@dataclass(frozen=True)
class Town:
    """A generated town: agency extracts, canonical views, mappings and ground truth."""

    seed: int
    areas: tuple[str, ...]
    agency_rows: dict[str, list[dict[str, str]]]
    canonical_rows: dict[str, list[dict[str, str]]]
    mappings: dict[str, dict[str, Any]]
    truth: list[tuple[str, str, str]]
    people: int


@dataclass(frozen=True)
class _Street:
    name: str
    area: int
    units: tuple[str, ...]
    max_number: int


@dataclass(frozen=True)
class _Home:
    area: int
    street: _Street
    number: int
    flat: int | None

    @property
    def address(self) -> str:
        base = f"{self.number} {self.street.name}"
        return base if self.flat is None else f"Flat {self.flat}, {base}"

    @property
    def postcode(self) -> str:
        units = self.street.units
        return units[(self.number - 1) * len(units) // self.street.max_number]


@dataclass
class _Household:
    area: int
    need: float
    homes: list[tuple[date, _Home]]
    members: list[_Person] = field(default_factory=list)

    def home_at(self, when: date) -> _Home:
        return [home for start, home in self.homes if start <= when][-1]


@dataclass
class _Person:
    pid: str
    given: str
    names: list[tuple[date, str]]
    dob: date
    sex: str
    nhs: str
    need: float
    household: _Household

    def family_at(self, when: date) -> str:
        return [name for start, name in self.names if start <= when][-1]

    @property
    def is_child(self) -> bool:
        return _age(self.dob, PERIOD_START) < 18


def _age(dob: date, when: date) -> int:
    return when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day))


def _random_date(rng: Rng, start: date, end: date) -> date:
    return start + timedelta(days=int(rng.integers((end - start).days + 1)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _sectors(areas: int) -> tuple[str, ...]:
    per = _SECTORS_PER_DISTRICT
    return tuple(f"{POSTCODE_AREA}{i // per + 1} {i % per + 1}" for i in range(areas))


def _streets(rng: Rng, sectors: tuple[str, ...], people: int) -> list[list[_Street]]:
    suffixes = tuple(lists.STREET_SUFFIXES)
    combos = [f"{stem} {suffix}" for stem in lists.STREET_STEMS for suffix in suffixes]
    order = iter(rng.permutation(len(combos)))
    max_number = max(40, 3 * people // (5 * len(sectors)))
    town: list[list[_Street]] = []
    for area, sector in enumerate(sectors):
        inward = rng.permutation(len(INWARD_LETTERS) ** 2)
        streets, used = [], 0
        for _ in range(int(rng.integers(4, 8))):
            count = int(rng.integers(1, 4))
            units = tuple(_unit(sector, int(code)) for code in inward[used : used + count])
            used += count
            streets.append(_Street(combos[int(next(order))], area, units, max_number))
        town.append(streets)
    return town


def _unit(sector: str, code: int) -> str:
    first, second = divmod(code, len(INWARD_LETTERS))
    return f"{sector}{INWARD_LETTERS[first]}{INWARD_LETTERS[second]}"


def _deprivation(rng: Rng, areas: int) -> list[float]:
    scores = [float(x) for x in rng.beta(1.2, 7.0, size=areas)]
    hot = rng.permutation(areas)[: max(1, round(areas * 0.12))]
    for index in hot:
        scores[int(index)] = float(rng.uniform(0.75, 1.0))
    return scores


def _new_home(rng: Rng, streets: list[_Street], deprivation: float, used: set[str]) -> _Home:
    home = None
    for _ in range(30):
        street = streets[int(rng.integers(len(streets)))]
        number = int(rng.integers(1, street.max_number + 1))
        flat = int(rng.integers(1, 13)) if rng.random() < 0.1 + 0.5 * deprivation else None
        home = _Home(street.area, street, number, flat)
        if home.address not in used:
            break
    assert home is not None
    used.add(home.address)  # membership only; never iterated
    return home


def _nhs_number(rng: Rng, used: dict[str, None]) -> str:
    while True:
        digits = [int(d) for d in rng.integers(0, 10, size=9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        number = "".join(map(str, digits)) + str(check)
        if check != 10 and digits[0] != 0 and number not in used:
            used[number] = None
            return number


def _household_roles(rng: Rng, size: int) -> list[str]:
    if size == 1:
        return ["head"]
    if size == 2:
        return ["head", "partner"] if rng.random() < 0.72 else ["head", "child"]
    u = rng.random()
    adults = (
        ["head", "partner"] if u < 0.7 else ["head"] if u < 0.95 else ["head", "partner", "elder"]
    )
    return adults + ["child"] * max(0, size - len(adults))


def _birth_dates(rng: Rng, roles: list[str]) -> list[date]:
    has_child = "child" in roles
    head_year = int(rng.integers(1968, 2003) if has_child else rng.integers(1940, 2006))
    out = []
    for role in roles:
        if role == "child":
            year = int(rng.integers(max(2007, head_year + 17), 2025))
        elif role == "elder":
            year = max(1940, head_year - int(rng.integers(22, 35)))
        elif role == "partner":
            year = int(np.clip(head_year + round(rng.normal(0, 3)), 1940, 2005))
        else:
            year = head_year
        out.append(_random_date(rng, date(year, 1, 1), date(year, 12, 31)))
    return out


def _given_name(rng: Rng, sex: str, born: int) -> str:
    """Mostly modern names for children born since 2000, classic ones for those before 1990."""
    if born >= 2000 and rng.random() < 0.7:
        return pick(rng, _MODERN[sex])
    if born < 1990:
        return pick(rng, _CLASSIC[sex])
    return pick(rng, _MODERN[sex] + _CLASSIC[sex])


def _make_household(
    rng: Rng, size: int, home: _Home, need: float, ids: dict[str, None]
) -> _Household:
    hh = _Household(home.area, need, [(date.min, home)])
    family = pick(rng, lists.SURNAMES)
    roles = _household_roles(rng, size)
    head_sex = "M" if rng.random() < 0.5 else "F"
    for role, dob in zip(roles, _birth_dates(rng, roles), strict=True):
        if role == "partner" and rng.random() < 0.95:
            sex = "F" if head_sex == "M" else "M"
        else:
            sex = head_sex if role == "head" else ("M" if rng.random() < 0.5 else "F")
        own = family
        if (role in ("partner", "elder") and rng.random() < 0.2) or rng.random() < 0.04:
            own = pick(rng, lists.SURNAMES)
        given = _given_name(rng, sex, dob.year)
        person_need = float(np.clip(need + rng.normal(0, 0.12), 0.0, 1.0))
        pid = f"PER{len(ids) + 1:06d}"
        nhs = _nhs_number(rng, ids)
        hh.members.append(_Person(pid, given, [(date.min, own)], dob, sex, nhs, person_need, hh))
    return hh


def _households(
    rng: Rng, people: int, streets: list[list[_Street]], deprivation: list[float]
) -> list[_Household]:
    weights = np.array([1.0 + 1.5 * d for d in deprivation])
    weights /= weights.sum()
    sizes, size_p = np.arange(1, 7), [0.29, 0.34, 0.16, 0.13, 0.06, 0.02]
    ids: dict[str, None] = {}
    used: set[str] = set()
    households, count = [], 0
    while count < people:
        size = min(int(rng.choice(sizes, p=size_p)), people - count)
        area = int(rng.choice(len(weights), p=weights))
        home = _new_home(rng, streets[area], deprivation[area], used)
        need = float(np.clip(deprivation[area] + rng.normal(0, 0.15), 0.0, 1.0))
        households.append(_make_household(rng, size, home, need, ids))
        count += size
    return households


def _apply_life_events(
    rng: Rng, households: list[_Household], streets: list[list[_Street]], deprivation: list[float]
) -> None:
    """About 8% of people move (whole households); about 3% of adult women change name."""
    used = {home.address for hh in households for _, home in hh.homes}
    for hh in households:
        if rng.random() < 0.08:
            area = hh.area if rng.random() < 0.4 else int(rng.integers(len(streets)))
            when = _random_date(rng, date(2024, 3, 1), date(2026, 10, 31))
            hh.homes.append((when, _new_home(rng, streets[area], deprivation[area], used)))
        for person in hh.members:
            if person.sex == "F" and not person.is_child and rng.random() < 0.03:
                when = _random_date(rng, date(2024, 2, 1), date(2026, 11, 30))
                new = pick(rng, lists.SURNAMES)
                if new != person.names[0][1]:
                    person.names.append((when, new))


def _event_date(rng: Rng, person: _Person, agency: str) -> date | None:
    start = max(PERIOD_START, person.dob)
    end = PERIOD_END
    if agency == "school":
        start = max(start, add_years(person.dob, 4))
        end = min(end, add_years(person.dob, 18) - timedelta(days=1))
    return _random_date(rng, start, end) if start <= end else None


def _household_agencies(rng: Rng, hh: _Household) -> list[list[str]]:
    """Which agencies know each member; correlated through need and police involvement."""
    known: list[list[str]] = [[] for _ in hh.members]
    for person, agencies in zip(hh.members, known, strict=True):
        male = 0.6 if person.sex == "M" else 0.0
        if _age(person.dob, PERIOD_START) >= 10 and rng.random() < _sigmoid(
            -4.3 + 5.0 * person.need + male
        ):
            agencies.append("police")
    police_adult = any(
        "police" in k for p, k in zip(hh.members, known, strict=True) if not p.is_child
    )
    has_child = any(p.is_child for p in hh.members)
    cs = has_child and rng.random() < _sigmoid(-5.3 + 5.0 * hh.need + 1.5 * police_adult)
    tenant = rng.random() < _sigmoid(-2.45 + 4.2 * hh.need)
    for person, agencies in zip(hh.members, known, strict=True):
        if cs and rng.random() < (0.9 if person.is_child else 0.65):
            agencies.append("childrens_services")
        if tenant and rng.random() < (0.5 if person.is_child else 0.95):
            agencies.append("housing")
        if rng.random() < _sigmoid(-0.45 + 2.2 * person.need + 0.3 * person.is_child):
            agencies.append("health")
        if person.is_child and rng.random() < 0.85:
            agencies.append("school")
    return known


def _contacts(rng: Rng, households: list[_Household]) -> dict[str, list[tuple[_Person, date]]]:
    out: dict[str, list[tuple[_Person, date]]] = {agency: [] for agency in AGENCIES}
    for hh in households:
        for person, agencies in zip(hh.members, _household_agencies(rng, hh), strict=True):
            for agency in agencies:  # appended in AGENCIES order
                when = _event_date(rng, person, agency)
                if when is not None:
                    out[agency].append((person, when))
    return out


def _records(
    rng: Rng, spec: AgencyProfile, contacts: list[tuple[_Person, date]]
) -> list[tuple[str, AgencyRecord]]:
    entries = [(person, when, False) for person, when in contacts]
    for person, when in contacts:
        if rng.random() < spec.habits.duplicate:
            entries.append((person, _event_date(rng, person, spec.name) or when, True))
    first = int(rng.integers(100, 5000))
    out = []
    for i, k in enumerate(rng.permutation(len(entries))):
        person, when, force = entries[int(k)]
        home = person.household.home_at(when)
        rec = AgencyRecord(
            spec.make_id(first + i, when),
            person.given,
            person.family_at(when),
            person.dob,
            person.sex,
            home.postcode,
            home.address,
            person.nhs,
            when,
        )
        out.append((person.pid, dirty(rng, rec, spec.habits, force)))
    return out


def _canonical_row(rec: AgencyRecord) -> dict[str, str]:
    values = (
        rec.record_id,
        rec.given,
        rec.family,
        rec.dob.isoformat() if rec.dob else "",
        rec.sex,
        rec.postcode,
        rec.address,
        rec.nhs,
        rec.event.isoformat(),
    )
    return dict(zip((*CANONICAL_COLUMNS, "event_date"), values, strict=True))


def _agency_row(spec: AgencyProfile, rec: AgencyRecord) -> dict[str, str]:
    canonical = _canonical_row(rec)
    row: dict[str, str] = {}
    for name, column in zip(canonical, spec.columns, strict=True):
        if not column:
            continue
        if name in _DATE_FIELDS:
            row[column] = spec.format_date(rec.dob if name == "date_of_birth" else rec.event)
        elif name == "sex":
            row[column] = spec.sex_codes.get(rec.sex, "")
        else:
            row[column] = canonical[name]
    return row


def generate_town(*, seed: int = 7, people: int = 3000, areas: int = 30) -> Town:
    """Build the town for ``seed`` (>= 0) with ``people`` people in ``areas`` sectors."""
    if seed < 0 or people < 1 or not 1 <= areas <= MAX_AREAS:
        raise ValueError(f"need seed >= 0, people >= 1 and 1 <= areas <= {MAX_AREAS}")
    sectors = _sectors(areas)
    rng = np.random.default_rng([seed, 1])
    streets = _streets(rng, sectors, people)
    deprivation = _deprivation(rng, areas)
    households = _households(np.random.default_rng([seed, 2]), people, streets, deprivation)
    _apply_life_events(np.random.default_rng([seed, 3]), households, streets, deprivation)
    contacts = _contacts(np.random.default_rng([seed, 4]), households)
    agency_rows: dict[str, list[dict[str, str]]] = {}
    canonical_rows: dict[str, list[dict[str, str]]] = {}
    truth: list[tuple[str, str, str]] = []
    for index, agency in enumerate(AGENCIES):
        spec = lists.AGENCY_PROFILES[agency]
        records = _records(np.random.default_rng([seed, 10 + index]), spec, contacts[agency])
        agency_rows[agency] = [_agency_row(spec, rec) for _, rec in records]
        canonical_rows[agency] = [_canonical_row(rec) for _, rec in records]
        truth.extend((agency, rec.record_id, pid) for pid, rec in records)
    fields = (*CANONICAL_COLUMNS, "event_date")
    mappings = {a: lists.AGENCY_PROFILES[a].mapping(fields) for a in AGENCIES}
    return Town(seed, sectors, agency_rows, canonical_rows, mappings, truth, people)


def _mapping_columns(mapping: Mapping[str, Any]) -> list[str]:
    """The agency's own column names, in mapping order (plain name or ``{column: ...}``)."""
    return [v if isinstance(v, str) else str(v["column"]) for v in mapping["columns"].values()]


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_town(town: Town, out_dir: Path) -> dict[str, Path]:
    """Writes out_dir/agencies/<agency>.csv (agency columns),
    out_dir/agencies/<agency>.mapping.yaml, and out_dir/truth/truth.csv (columns
    agency,record_id,person_id), kept apart from the agency files. Returns agency -> csv path."""
    agencies_dir = out_dir / "agencies"
    paths: dict[str, Path] = {}
    for agency, rows in town.agency_rows.items():
        mapping = town.mappings[agency]
        paths[agency] = agencies_dir / f"{agency}.csv"
        _write_csv(paths[agency], _mapping_columns(mapping), rows)
        text = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True)
        (agencies_dir / f"{agency}.mapping.yaml").write_text(text, encoding="utf-8", newline="\n")
    truth = [dict(zip(("agency", "record_id", "person_id"), t, strict=True)) for t in town.truth]
    _write_csv(out_dir / "truth" / "truth.csv", ["agency", "record_id", "person_id"], truth)
    return paths


def write_canonical_csv(rows: list[dict[str, str]], path: Path) -> None:
    """Header = CANONICAL_COLUMNS + any extra keys of the rows (in first-seen order); utf-8,
    csv module."""
    header = list(CANONICAL_COLUMNS)
    for row in rows:
        header.extend(key for key in row if key not in header)
    _write_csv(path, header, rows)
