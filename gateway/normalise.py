"""Normalisation of identifiers before encoding: names, dates, sex codes, postcodes, addresses,
NHS numbers.

Each function takes one raw value and returns its canonical form, ``None`` for an empty value,
or raises :class:`InvalidValue` (never naming the value: messages may reach logs). The caller
counts invalid values per field and, by default, treats them as missing.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from functools import lru_cache
from importlib import resources

from keys.errors import InputError


class InvalidValue(InputError):
    """A single value failed validation; the field is named by the caller."""


_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "lord", "lady"}
_SAINT = {"saint": "st", "ste": "st"}
_SUFFIXES = {"jr", "jnr", "sr", "snr", "ii", "iii", "iv"}
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][ABD-HJLNP-UW-Z]{2})$")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
FLAT_SLASH = re.compile(r"\b(\d+)\s*/\s*(\d+)\b")
_SPACES = re.compile(r"\s+")
_FOREIGN_POSTCODE = re.compile(r"[0-9]{3,7}")  # numeric codes: Australia, US ZIP, most of Europe
_NHS_SEPARATORS = re.compile(r"[\s-]")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_NHS_WEIGHTS = tuple(range(10, 1, -1))
ADDRESS_WORDS = {
    "rd": "road", "st": "street", "ave": "avenue", "av": "avenue", "ln": "lane",
    "cres": "crescent", "cl": "close", "ct": "court", "gdns": "gardens", "pl": "place",
    "sq": "square", "tce": "terrace", "terr": "terrace", "hse": "house", "apt": "flat",
    "apartment": "flat",
}  # fmt: skip
EARLIEST_BIRTH = dt.date(1900, 1, 1)


def fold(value: str) -> str:
    """Unicode-fold to lower-case ASCII letters, digits and single spaces (é -> e)."""
    if value.isascii():  # NFKD leaves ASCII unchanged
        ascii_only = value
    else:
        decomposed = unicodedata.normalize("NFKD", value)
        ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    lowered = ascii_only.lower().replace("'", "").replace("\u2019", "")
    return " ".join(_NOT_ALPHANUMERIC.sub(" ", lowered).split())


@lru_cache(maxsize=1)
def nickname_table() -> dict[str, str]:
    """Variant -> canonical given name, from the table shipped with the gateway."""
    text = resources.files("gateway").joinpath("data/nicknames.csv").read_text(encoding="utf-8")
    return {row["variant"]: row["canonical"] for row in csv.DictReader(text.splitlines())}


def _words(value: str) -> list[str]:
    return [w for w in fold(value).split() if w not in _TITLES]


def normalise_given_name(value: str) -> str | None:
    """First given name, folded, nickname mapped to its canonical form."""
    words = _words(value)
    if not words:
        return None
    first = words[0]
    return nickname_table().get(first, first)


def normalise_family_name(value: str) -> str | None:
    """Family name folded, suffixes dropped, hyphens and spaces joined (Smith-Jones: smithjones),
    'Saint' written 'st' (Saint John and St. John: stjohn)."""
    words = [_SAINT.get(w, w) for w in _words(value) if w not in _SUFFIXES]
    return "".join(words) or None


ISO_FORMAT = "%Y-%m-%d"


def _parse_iso(text: str) -> dt.date | None:
    """Fast path for the commonest format: exactly YYYY-MM-DD in ASCII digits (None otherwise,
    and strptime decides); strptime would accept and reject the same strings."""
    if len(text) == 10 and text.isascii() and text[4] == text[7] == "-":
        return dt.date.fromisoformat(text)
    return None


def parse_date(
    value: str, fmt: str | tuple[str, ...] = "%Y-%m-%d", *, century_pivot: int | None = None
) -> dt.date:
    """Parse a date in the given strptime format, or the first of several that fits (an agency
    column may mix '12/03/1980' and '12-Mar-1980'); two-digit years follow ``century_pivot``."""
    formats = (fmt,) if isinstance(fmt, str) else fmt
    for one in formats[:-1]:
        try:
            return _parse_one(value, one, century_pivot)
        except InvalidValue:
            continue
    return _parse_one(value, formats[-1], century_pivot)


def _parse_one(value: str, fmt: str, century_pivot: int | None) -> dt.date:
    text = value.strip()
    try:
        parsed = _parse_iso(text) if fmt == ISO_FORMAT else None
        parsed = parsed or dt.datetime.strptime(text, fmt).date()
    except ValueError:
        raise InvalidValue(
            "a date does not match the mapped format", fix="fix the format"
        ) from None
    if century_pivot is not None and "%y" in fmt:
        century = 2000 if parsed.year % 100 <= century_pivot else 1900
        try:
            parsed = parsed.replace(year=century + parsed.year % 100)
        except ValueError:  # 29 February of a year the pivot makes common
            raise InvalidValue("a date does not exist", fix="check it") from None
    return parsed


def normalise_birth_date(
    value: str,
    fmt: str | tuple[str, ...] = "%Y-%m-%d",
    *,
    century_pivot: int | None = None,
    today: dt.date,
) -> dt.date | None:
    """A date of birth; impossible ones (future, before 1900) are invalid."""
    if not value.strip():
        return None
    born = parse_date(value, fmt, century_pivot=century_pivot)
    if not EARLIEST_BIRTH <= born <= today:
        raise InvalidValue("a date of birth is in the future or before 1900", fix="check it")
    return born


def normalise_sex(value: str, codes: dict[str, str] | None = None) -> str | None:
    """'M' or 'F' through the agency's code table; other values are missing, not invalid."""
    text = value.strip()
    if not text:
        return None
    table = codes or {"M": "M", "F": "F", "MALE": "M", "FEMALE": "F"}
    mapped = table.get(text, table.get(text.upper(), ""))
    return mapped if mapped in ("M", "F") else None


def normalise_postcode(value: str) -> str | None:
    """A UK postcode in canonical form ('SB3 2DL'); a wrong shape is invalid."""
    compact = _SPACES.sub("", value).upper()
    if not compact:
        return None
    match = _POSTCODE.match(compact)
    if not match:
        raise InvalidValue("a postcode is not a valid UK postcode", fix="check it")
    return f"{match.group(1)} {match.group(2)}"


def normalise_postcode_or_foreign(value: str) -> tuple[str | None, bool]:
    """A UK postcode in canonical form, or else a numeric foreign one (3-7 digits, e.g. an
    Australian '4061') as its compact form: (value, is_uk). A foreign postcode stays usable for
    linkage and is reported apart; anything else that fails the UK check is invalid."""
    try:
        return normalise_postcode(value), True
    except InvalidValue:
        compact = _SPACES.sub("", value).upper()
        if _FOREIGN_POSTCODE.fullmatch(compact):
            return compact, False
        raise


def postcode_sector(postcode: str) -> str:
    """'SB3 2DL' -> 'SB3 2' (for generalisation)."""
    return postcode[:-2]


def postcode_district(postcode: str) -> str:
    """'SB3 2DL' -> 'SB3'."""
    return postcode.split(" ")[0]


def normalise_address(value: str) -> str | None:
    """Folded address with common abbreviations spelt out; '3/22' reads as 'flat 3 22'."""
    text = FLAT_SLASH.sub(flat_words, value) if "/" in value else value
    return address_from_words(fold(text).split())


def flat_words(match: re.Match[str]) -> str:
    """'3/22' as 'flat 3 22' (as a function, twice as fast in ``sub`` as a template)."""
    return "flat " + match[1] + " " + match[2]


def address_from_words(folded_words: list[str]) -> str | None:
    """Abbreviations spelt out, a repeated 'flat' once, joined; None when nothing is left."""
    words = [ADDRESS_WORDS.get(w, w) for w in folded_words]
    deduplicated = [w for i, w in enumerate(words) if not (w == "flat" and i and words[i - 1] == w)]
    return " ".join(deduplicated) or None


def nhs_check_digit_ok(digits: str) -> bool:
    """The NHS number modulus-11 check."""
    total = sum(map(int.__mul__, map(int, digits[:9]), _NHS_WEIGHTS))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def normalise_nhs_number(value: str) -> str | None:
    """Ten digits passing the mod-11 check; spaces and dashes ignored."""
    digits = _NHS_SEPARATORS.sub("", value)
    if not digits:
        return None
    if not (_TEN_DIGITS.fullmatch(digits) and nhs_check_digit_ok(digits)):  # ASCII only
        raise InvalidValue("an NHS number fails the format or mod-11 check", fix="check it")
    return digits
