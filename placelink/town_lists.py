"""Word lists and agency profiles for the synthetic town generator (:mod:`placelink.town`).

The word lists (UK given names for each sex, surnames, nicknames, street-name parts) are
package data, ``placelink/data/town_words.yaml``; this module loads them and holds each
agency's profile: its column names, date format, sex codes, record-id style and data-quality
habits. Order matters: the generator draws by index, so reordering a list changes every town.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import yaml

_WORDS: dict[str, Any] = yaml.safe_load(
    resources.files("placelink").joinpath("data/town_words.yaml").read_text(encoding="utf-8")
)
MALE_NAMES: tuple[str, ...] = tuple(_WORDS["male_names"])
FEMALE_NAMES: tuple[str, ...] = tuple(_WORDS["female_names"])
SURNAMES: tuple[str, ...] = tuple(_WORDS["surnames"])
# Given names that became common only for children born since about 2000 (membership only).
MODERN_NAMES: frozenset[str] = frozenset(_WORDS["modern_names"])
NICKNAMES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _WORDS["nicknames"].items()}
STREET_STEMS: tuple[str, ...] = tuple(_WORDS["street_stems"])
STREET_SUFFIXES: dict[str, str] = dict(_WORDS["street_suffixes"])
MONTH_ABBREVIATIONS: tuple[str, ...] = tuple(_WORDS["month_abbreviations"])


@dataclass(frozen=True)
class Habits:
    """How dirty one agency's records are. Rates are per record (per name for typos)."""

    typo: float  # one-letter slip in a given or family name
    nickname: float  # "Bill" for "William", where the name has nicknames
    missing: Mapping[str, float]  # record field -> share left empty
    dob_swap: float  # day and month swapped (only where that is still a valid date)
    year_slip: float  # 1984 -> 1948, or one year out
    postcode_variant: float  # "sb32dl", "SB32DL", "SB3  2DL", "sb3 2dl"
    address_variant: float  # street suffix abbreviated: "Road" -> "Rd"
    flat_slash: float  # "Flat 3, 22 Mill Street" -> "3/22 Mill Street"
    duplicate: float  # share of the agency's records recorded twice
    upper: bool = False  # names, postcode and address all upper case
    upper_family: bool = False  # family name upper case ("SMITH")
    nhs_spaced: bool = False  # NHS number written "485 777 3456"


@dataclass(frozen=True)
class AgencyProfile:
    """One agency's export: columns, formats, record ids and habits."""

    name: str
    columns: tuple[str, ...]  # agency column per canonical field then event_date; "" = absent
    date_format: str  # a datetime.strptime format, used for date of birth and event date
    sex_codes: Mapping[str, str]  # canonical "M"/"F" -> the agency's code
    make_id: Callable[[int, date], str]  # (sequence number, event date) -> record id
    habits: Habits
    century_pivot: int | None = None  # two-digit years: yy <= pivot is 20yy, else 19yy

    def mapping(self, fields: tuple[str, ...]) -> dict[str, Any]:
        """The YAML-ready column mapping; ``fields`` names the canonical field of each column."""
        columns: dict[str, Any] = {}
        for name, column in zip(fields, self.columns, strict=True):
            if not column:
                continue  # the agency does not hold this field
            if name in ("date_of_birth", "event_date"):
                columns[name] = {"column": column, "format": self.date_format}
                if self.century_pivot is not None:
                    columns[name]["century_pivot"] = self.century_pivot
            elif name == "sex":
                codes = {code: canonical for canonical, code in self.sex_codes.items()}
                columns[name] = {"column": column, "codes": codes}
            else:
                columns[name] = column
        return {"mapping_version": 1, "source": self.name, "columns": columns}

    def format_date(self, day: date | None) -> str:
        """``day`` as the agency writes it (parses back with ``date_format``); "" if missing."""
        if day is None:
            return ""
        if self.date_format == "%d-%b-%Y":  # month abbreviation independent of the locale
            return f"{day.day:02d}-{MONTH_ABBREVIATIONS[day.month - 1]}-{day.year}"
        if self.date_format == "%d/%m/%y":  # d/m/yy, as case-management systems print it
            return f"{day.day}/{day.month}/{day.year % 100:02d}"
        return day.strftime(self.date_format)


def _upn(n: int, _: date) -> str:
    """A 13-character unique pupil number: letter, "874" (local authority), 9 digits."""
    return f"{'ABCDEFGHJKLMNPQRTUVWXYZ'[n % 23]}874{n:09d}"


AGENCY_PROFILES: dict[str, AgencyProfile] = {
    "police": AgencyProfile(
        name="police",
        columns=("ref", "forename", "surname", "dob", "gender", "post_code", "address_line",
                 "nhs_no", "incident_date"),
        date_format="%d/%m/%Y",
        sex_codes={"M": "M", "F": "F"},
        make_id=lambda n, _: f"P-{n:06d}",
        habits=Habits(
            typo=0.05, nickname=0.25, dob_swap=0.02, year_slip=0.01, postcode_variant=0.2,
            address_variant=0.3, flat_slash=0.2, duplicate=0.05, upper=True,
            missing={"nhs": 0.92, "dob": 0.04, "postcode": 0.08, "address": 0.05, "sex": 0.02},
        ),
    ),
    "childrens_services": AgencyProfile(
        name="childrens_services",
        columns=("child_ref", "first_name", "last_name", "birth_date", "sex", "postcode",
                 "address", "nhs_number", "last_contact"),
        date_format="%d/%m/%y",
        sex_codes={"M": "M", "F": "F"},
        make_id=lambda n, _: f"CS{n:06d}",
        habits=Habits(
            typo=0.04, nickname=0.08, dob_swap=0.02, year_slip=0.005, postcode_variant=0.1,
            address_variant=0.1, flat_slash=0.1, duplicate=0.04,
            missing={"nhs": 0.2, "postcode": 0.04, "address": 0.03, "sex": 0.01},
        ),
        century_pivot=30,
    ),
    "housing": AgencyProfile(
        name="housing",
        columns=("tenancy_ref", "given", "family", "date_of_birth", "gender", "postcode",
                 "address1", "nhs", "tenancy_event"),
        date_format="%d-%b-%Y",
        sex_codes={"M": "Male", "F": "Female"},
        make_id=lambda n, when: f"HSG/{when.year}/{n:04d}",
        habits=Habits(
            typo=0.04, nickname=0.03, dob_swap=0.0, year_slip=0.01, postcode_variant=0.05,
            address_variant=0.4, flat_slash=0.6, duplicate=0.03, upper_family=True,
            nhs_spaced=True, missing={"nhs": 0.55, "dob": 0.03, "sex": 0.03},
        ),
    ),
    "health": AgencyProfile(
        name="health",
        columns=("nhs_id_local", "given_name", "family_name", "dob", "sex", "postcode",
                 "address", "nhs_number", "last_seen"),
        date_format="%Y-%m-%d",
        sex_codes={"M": "1", "F": "2"},  # NHS data dictionary: 1 male, 2 female
        make_id=lambda n, _: f"H{n:07d}",
        habits=Habits(
            typo=0.03, nickname=0.01, dob_swap=0.005, year_slip=0.003, postcode_variant=0.1,
            address_variant=0.15, flat_slash=0.1, duplicate=0.03,
            missing={"nhs": 0.02, "address": 0.02, "postcode": 0.01},
        ),
    ),
    "school": AgencyProfile(
        name="school",
        columns=("upn", "pupil_forename", "pupil_surname", "pupil_dob", "pupil_sex",
                 "home_postcode", "home_address", "", "attendance_date"),
        date_format="%d.%m.%Y",
        sex_codes={"M": "M", "F": "F"},
        make_id=_upn,
        habits=Habits(
            typo=0.03, nickname=0.3, dob_swap=0.01, year_slip=0.005, postcode_variant=0.1,
            address_variant=0.2, flat_slash=0.1, duplicate=0.04,
            missing={"nhs": 1.0, "postcode": 0.03, "address": 0.02},
        ),
    ),
}  # fmt: skip
