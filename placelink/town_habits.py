"""Agency data-quality habits for the synthetic town (:mod:`placelink.town`): typos,
nicknames, day/month swaps and year slips, postcode spacing and case, address abbreviations,
missing values and upper case, applied to one agency record at a time.

Every draw comes from the generator's seeded ``numpy`` stream, in a fixed order, so that a
seed gives the same town byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from placelink import town_lists as lists
from placelink.town_lists import Habits

Rng = np.random.Generator
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def pick(rng: Rng, items: tuple[str, ...]) -> str:
    """One item, drawn uniformly."""
    return items[int(rng.integers(len(items)))]


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (28 February for 29 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass
class AgencyRecord:
    record_id: str
    given: str
    family: str
    dob: date | None
    sex: str
    postcode: str
    address: str
    nhs: str
    event: date


def _typo(rng: Rng, text: str) -> str:
    """One deletion, insertion, substitution or transposition, keeping the first letter."""
    if len(text) < 3:
        return text
    kind, i = int(rng.integers(4)), int(rng.integers(1, len(text) - 1))
    letter = _LETTERS[int(rng.integers(26))]
    letter = letter.upper() if text[i].isupper() else letter
    if kind == 1:
        return text[:i] + letter + text[i:]
    if kind == 2 and text[i].isalpha() and letter.lower() != text[i].lower():
        return text[:i] + letter + text[i + 1 :]
    pair = text[i : i + 2]
    if kind == 3 and pair.isalpha() and pair[0] != pair[1]:
        return text[:i] + pair[::-1] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def _given_variant(rng: Rng, given: str, habits: Habits, force: bool) -> str:
    nicknames = lists.NICKNAMES.get(given)
    if nicknames and (rng.random() < habits.nickname or force):
        return pick(rng, nicknames)
    return _typo(rng, given) if force or rng.random() < habits.typo else given


def _dob_variant(rng: Rng, dob: date, event: date, habits: Habits) -> date:
    u = rng.random()
    if u < habits.dob_swap and dob.day <= 12 and dob.day != dob.month:
        swapped = date(dob.year, dob.day, dob.month)
        return swapped if swapped <= event else dob
    if u < habits.dob_swap + habits.year_slip:
        digits = str(dob.year)
        slips = (int(digits[:2] + digits[3] + digits[2]), dob.year - 1, dob.year + 1)
        year = slips[int(rng.integers(3))]
        if 1935 <= year <= event.year and year != dob.year:
            slipped = add_years(dob, year - dob.year)
            return slipped if slipped <= event else dob
    return dob


def _postcode_variant(rng: Rng, postcode: str) -> str:
    compact = postcode.replace(" ", "")
    variants = (compact.lower(), compact, postcode.replace(" ", "  "), postcode.lower())
    return variants[int(rng.integers(len(variants)))]


def _address_variant(rng: Rng, address: str, habits: Habits) -> str:
    if rng.random() < habits.address_variant:
        head, _, suffix = address.rpartition(" ")
        address = f"{head} {lists.STREET_SUFFIXES.get(suffix, suffix)}"
    if rng.random() < habits.flat_slash:
        address = re.sub(r"^Flat (\d+), (\d+) ", r"\1/\2 ", address)
    return address


def dirty(rng: Rng, rec: AgencyRecord, habits: Habits, force: bool) -> AgencyRecord:
    """Apply an agency's habits; ``force`` guarantees a name variation (for duplicates)."""
    force_given = force and rng.random() < 0.5
    rec.given = _given_variant(rng, rec.given, habits, force_given)
    if (force and not force_given) or rng.random() < habits.typo:
        rec.family = _typo(rng, rec.family)
    rec.dob = _dob_variant(rng, rec.dob, rec.event, habits) if rec.dob else None
    if rng.random() < habits.postcode_variant:
        rec.postcode = _postcode_variant(rng, rec.postcode)
    rec.address = _address_variant(rng, rec.address, habits)
    if habits.nhs_spaced:
        rec.nhs = f"{rec.nhs[:3]} {rec.nhs[3:6]} {rec.nhs[6:]}"
    for name in ("given", "family", "dob", "sex", "postcode", "address", "nhs"):
        if rng.random() < habits.missing.get(name, 0.0):
            setattr(rec, name, None if name == "dob" else "")
    if habits.upper:
        rec.given, rec.family = rec.given.upper(), rec.family.upper()
        rec.postcode, rec.address = rec.postcode.upper(), rec.address.upper()
    elif habits.upper_family:
        rec.family = rec.family.upper()
    return rec
