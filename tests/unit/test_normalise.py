"""Unit tests for gateway/normalise.py: names, dates, sex codes, postcodes, addresses and
NHS numbers."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.normalise import (
    EARLIEST_BIRTH,
    InvalidValue,
    fold,
    nhs_check_digit_ok,
    nickname_table,
    normalise_address,
    normalise_birth_date,
    normalise_family_name,
    normalise_given_name,
    normalise_nhs_number,
    normalise_postcode,
    normalise_postcode_or_foreign,
    normalise_sex,
    parse_date,
    postcode_district,
    postcode_sector,
)
from keys.errors import InputError

TODAY = dt.date(2026, 11, 22)
FOLDED = re.compile(r"^([a-z0-9]+( [a-z0-9]+)*)?$")
CANONICAL_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
NAME_TEXT = st.text(
    alphabet=st.sampled_from(list("abcdeéèëiïoöuüyzAEIOUZß' -’.,çñÅø")), max_size=25
)
BIRTH_DATES = st.dates(min_value=EARLIEST_BIRTH, max_value=TODAY)
TITLES_AND_SUFFIXES = {
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "rev",
    "sir",
    "dame",
    "lord",
    "lady",
    "jr",
    "jnr",
    "sr",
    "snr",
    "ii",
    "iii",
    "iv",
}


# --- folding and names ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT)
def test_fold_gives_only_lower_case_ascii_letters_digits_and_single_spaces(value: str) -> None:
    folded = fold(value)
    assert FOLDED.match(folded), folded
    assert fold(folded) == folded


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("José", "jose"),
        ("ÉLODIE", "elodie"),
        ("Zoë", "zoe"),
        ("O'Neil", "oneil"),
        ("O’Neil", "oneil"),
        ("  Anne -  Marie ", "anne marie"),
        ("Ångström", "angstrom"),
        ("", ""),
        ("!!!", ""),
    ],
)
def test_fold_examples(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT | NAME_TEXT)
def test_given_name_normalisation_is_idempotent(value: str) -> None:
    once = normalise_given_name(value)
    if once is None:
        return
    assert re.fullmatch(r"[a-z0-9]+", once)
    assert normalise_given_name(once) == once


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT | NAME_TEXT)
def test_family_name_normalisation_is_idempotent(value: str) -> None:
    once = normalise_family_name(value)
    if once is None:
        return
    assert re.fullmatch(r"[a-z0-9]+", once)
    # Joined words can spell a title ('M R' -> 'mr'); that one word is then dropped again.
    assume(once not in TITLES_AND_SUFFIXES)
    assert normalise_family_name(once) == once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John", "john"),
        ("Mr John Paul", "john"),
        ("Dr. Jane", "jane"),
        ("MRS   MARY-ANNE", "mary"),
        ("José", "jose"),
        ("Zoë", "zoe"),
        ("Bill", "william"),
        ("BILLY", "william"),
        ("Peggy", "margaret"),
        ("peggy sue", "margaret"),
        ("Mr", None),
        ("", None),
        ("  ", None),
    ],
)
def test_given_name_examples(raw: str, expected: str | None) -> None:
    assert normalise_given_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'Neil", "oneil"),
        ("O’NEIL", "oneil"),
        ("Smith-Jones", "smithjones"),
        ("Smith Jones", "smithjones"),
        ("SMITH - JONES", "smithjones"),
        ("Smith Jr", "smith"),
        ("Mrs Smith", "smith"),
        ("Brontë", "bronte"),
        ("Ó Briain", "obriain"),
        ("Saint John", "stjohn"),
        ("St. John", "stjohn"),
        ("ffrench-Mullen", "ffrenchmullen"),
        ("", None),
        ("Jnr", None),
    ],
)
def test_family_name_examples(raw: str, expected: str | None) -> None:
    assert normalise_family_name(raw) == expected


def test_nickname_table_has_no_chains_and_folded_entries() -> None:
    table = nickname_table()
    assert len(table) > 100
    assert table["bill"] == "william"
    assert table["peggy"] == "margaret"
    for variant, canonical in table.items():
        assert fold(variant) == variant
        assert fold(canonical) == canonical
        assert canonical not in table, f"{variant} -> {canonical} -> {table[canonical]}"


@settings(max_examples=50, deadline=None)
@given(variant=st.sampled_from(sorted(nickname_table())), title=st.sampled_from(["", "Mr ", "Ms "]))
def test_every_nickname_maps_to_its_canonical_name(variant: str, title: str) -> None:
    expected = nickname_table()[variant]
    assert normalise_given_name(title + variant.upper()) == expected
    assert normalise_given_name(expected) == expected


# --- dates ---------------------------------------------------------------------------------------

FOUR_DIGIT_YEAR_FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y%m%d",
    "%d %b %Y",
    "%d %B %Y",
]


@settings(max_examples=150, deadline=None)
@given(born=BIRTH_DATES, fmt=st.sampled_from(FOUR_DIGIT_YEAR_FORMATS))
def test_birth_dates_in_each_format_parse_back(born: dt.date, fmt: str) -> None:
    text = born.strftime(fmt)
    assert normalise_birth_date(text, fmt, today=TODAY) == born
    assert normalise_birth_date(f"  {text} ", fmt, today=TODAY) == born


@settings(max_examples=150, deadline=None)
@given(
    born=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)),
    pivot=st.integers(0, 99),
    fmt=st.sampled_from(["%d/%m/%y", "%y%m%d", "%d-%m-%y"]),
)
def test_two_digit_years_follow_the_century_pivot(born: dt.date, pivot: int, fmt: str) -> None:
    yy = born.year % 100
    assume(not (born.month == 2 and born.day == 29 and yy == 0))
    expected_year = 2000 + yy if yy <= pivot else 1900 + yy
    parsed = parse_date(born.strftime(fmt), fmt, century_pivot=pivot)
    assert parsed == born.replace(year=expected_year)


@pytest.mark.parametrize(
    ("text", "pivot", "expected"),
    [
        ("01/02/30", 30, dt.date(2030, 2, 1)),
        ("01/02/31", 30, dt.date(1931, 2, 1)),
        ("01/02/68", 30, dt.date(1968, 2, 1)),
        ("01/02/69", 70, dt.date(2069, 2, 1)),
        ("01/02/00", 0, dt.date(2000, 2, 1)),
    ],
)
def test_two_digit_year_examples(text: str, pivot: int, expected: dt.date) -> None:
    assert parse_date(text, "%d/%m/%y", century_pivot=pivot) == expected


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("31/02/2000", "%d/%m/%Y"),
        ("29/02/2001", "%d/%m/%Y"),
        ("2000-13-01", "%Y-%m-%d"),
        ("00/01/2000", "%d/%m/%Y"),
        ("2000-01-01", "%d/%m/%Y"),
        ("yesterday", "%Y-%m-%d"),
        ("1899-12-31", "%Y-%m-%d"),
        ("0001-01-01", "%Y-%m-%d"),
        ((TODAY + dt.timedelta(days=1)).isoformat(), "%Y-%m-%d"),
        ("2999-01-01", "%Y-%m-%d"),
    ],
)
def test_impossible_birth_dates_are_invalid(text: str, fmt: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_birth_date(text, fmt, today=TODAY)
    assert text not in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_birth_date_bounds_are_inclusive() -> None:
    assert normalise_birth_date("1900-01-01", today=TODAY) == dt.date(1900, 1, 1)
    assert normalise_birth_date(TODAY.isoformat(), today=TODAY) == TODAY
    assert normalise_birth_date("", today=TODAY) is None
    assert normalise_birth_date("   ", today=TODAY) is None


@settings(max_examples=100, deadline=None)
@given(value=ANY_TEXT)
def test_birth_dates_from_any_text_are_a_date_none_or_invalid(value: str) -> None:
    try:
        born = normalise_birth_date(value, today=TODAY)
    except InvalidValue as error:
        fixed_messages = set()
        for other in ("not a date", "2999-01-01"):
            with pytest.raises(InvalidValue) as caught:
                normalise_birth_date(other, today=TODAY)
            fixed_messages.add(str(caught.value))
        assert str(error) in fixed_messages  # the same words for every value: none named
        return
    assert born is None or EARLIEST_BIRTH <= born <= TODAY


# --- sex codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("M", "M"),
        ("m", "M"),
        (" F ", "F"),
        ("female", "F"),
        ("MALE", "M"),
        ("X", None),
        ("U", None),
        ("", None),
        ("9", None),
    ],
)
def test_default_sex_codes(raw: str, expected: str | None) -> None:
    assert normalise_sex(raw) == expected


def test_agency_sex_codes() -> None:
    codes = {"1": "M", "2": "F", "9": "U", "mal": "M"}
    assert normalise_sex("1", codes) == "M"
    assert normalise_sex("2", codes) == "F"
    assert normalise_sex("9", codes) is None
    assert normalise_sex("MAL", {"MAL": "M"}) == "M"
    assert normalise_sex("M", codes) is None


@settings(max_examples=100, deadline=None)
@given(value=ANY_TEXT)
def test_sex_is_always_m_f_or_none(value: str) -> None:
    assert normalise_sex(value) in ("M", "F", None)


# --- postcodes -----------------------------------------------------------------------------------

OUTWARD = st.from_regex(r"\A[A-Z]{1,2}[0-9][A-Z0-9]?\Z")
INWARD = st.from_regex(r"\A[0-9][ABD-HJLNP-UW-Z]{2}\Z")


@settings(max_examples=150, deadline=None)
@given(
    outward=OUTWARD,
    inward=INWARD,
    gap=st.sampled_from(["", " ", "  ", "\t", " \u00a0"]),
    lower=st.booleans(),
)
def test_postcode_spacing_and_case_variants_are_equal(
    outward: str, inward: str, gap: str, lower: bool
) -> None:
    raw = f" {outward}{gap}{inward} "
    raw = raw.lower() if lower else raw
    result = normalise_postcode(raw)
    assert result == f"{outward} {inward}"
    assert result is not None and CANONICAL_POSTCODE.match(result)
    assert normalise_postcode(result) == result


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SB3 2DL", "SB3 2DL"),
        ("sb32dl", "SB3 2DL"),
        ("EC1A1BB", "EC1A 1BB"),
        ("w1a 0ax", "W1A 0AX"),
        ("M1 1AE", "M1 1AE"),
        ("", None),
        ("   ", None),
    ],
)
def test_postcode_examples(raw: str, expected: str | None) -> None:
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["SB3", "SB3 2D", "SB3 2DLX", "123 4AB", "SB3 2CI", "S 2DL", "ABC1 2DL", "SB3-2DL", "SB3 DL2"],
)
def test_postcodes_of_an_invalid_shape_are_invalid_and_not_named(raw: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_postcode(raw)
    message = str(caught.value)
    assert raw not in message
    assert raw.replace(" ", "") not in message
    assert "postcode" in message


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT)
def test_postcodes_from_any_text_are_canonical_none_or_invalid(value: str) -> None:
    try:
        result = normalise_postcode(value)
    except InvalidValue as error:
        with pytest.raises(InvalidValue) as other:
            normalise_postcode("!!")
        assert str(error) == str(other.value)  # the same words for every value: none named
        return
    assert result is None or CANONICAL_POSTCODE.match(result)


def test_postcode_sector_and_district() -> None:
    assert postcode_sector("SB3 2DL") == "SB3 2"
    assert postcode_district("SB3 2DL") == "SB3"
    assert postcode_sector("EC1A 1BB") == "EC1A 1"


# --- NHS numbers ---------------------------------------------------------------------------------


def _check_digit(first_nine: str) -> int | None:
    """The NHS modulus-11 rule, written out independently: None when no valid number exists."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


NINE_DIGITS = st.text(alphabet="0123456789", min_size=9, max_size=9)


@st.composite
def valid_nhs_numbers(draw: st.DrawFn) -> str:
    first_nine = draw(NINE_DIGITS)
    check = _check_digit(first_nine)
    assume(check is not None)
    return f"{first_nine}{check}"


@settings(max_examples=150, deadline=None)
@given(number=valid_nhs_numbers())
def test_valid_nhs_numbers_pass(number: str) -> None:
    assert nhs_check_digit_ok(number)
    assert normalise_nhs_number(number) == number
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    assert normalise_nhs_number(spaced) == number
    assert normalise_nhs_number(f"{number[:3]}-{number[3:6]}-{number[6:]}") == number


@settings(max_examples=100, deadline=None)
@given(first_nine=NINE_DIGITS)
def test_the_check_digit_rule(first_nine: str) -> None:
    check = _check_digit(first_nine)
    accepted = [d for d in "0123456789" if nhs_check_digit_ok(first_nine + d)]
    assert accepted == ([] if check is None else [str(check)])


@settings(max_examples=150, deadline=None)
@given(number=valid_nhs_numbers(), position=st.integers(0, 9), digit=st.sampled_from("0123456789"))
def test_any_single_digit_change_of_a_valid_nhs_number_fails(
    number: str, position: int, digit: str
) -> None:
    assume(number[position] != digit)
    changed = number[:position] + digit + number[position + 1 :]
    # Weights 2..10 times a change of 1..9 are never a multiple of 11: mod 11 catches every
    # single-digit error, so the changed number can never be another valid number.
    assert _check_digit(changed[:9]) != int(changed[9])
    assert not nhs_check_digit_ok(changed)
    with pytest.raises(InvalidValue) as caught:
        normalise_nhs_number(changed)
    assert changed not in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    ["943476591", "94347659190", "943476591X", "9434765918", "abcdefghij", "9434765910"],
)
def test_malformed_nhs_numbers_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_nhs_number(raw)


@pytest.mark.parametrize(
    "raw",
    ["²" * 10, "٩٤٣٤٧٦٥٩١٩", "９４３４７６５９１９", "①②③④⑤⑥⑦⑧⑨⓪"],
    ids=["superscripts", "arabic-indic", "fullwidth", "circled"],
)
def test_non_ascii_digits_are_not_an_nhs_number(raw: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_nhs_number(raw)


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT | st.text(alphabet="0123456789 -²٣", max_size=14))
def test_nhs_numbers_from_any_text_are_ten_ascii_digits_none_or_invalid(value: str) -> None:
    try:
        result = normalise_nhs_number(value)
    except InvalidValue:
        return
    assert result is None or (re.fullmatch(r"[0-9]{10}", result) and nhs_check_digit_ok(result))


def test_empty_nhs_number_is_missing() -> None:
    assert normalise_nhs_number("") is None
    assert normalise_nhs_number(" - ") is None


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("12 High Rd", "12 High Road"),
        ("12 high rd.", "12 HIGH ROAD"),
        ("4 Mill St", "4 Mill Street"),
        ("9 Elm Ave", "9 Elm Avenue"),
        ("3/22 High Street", "Flat 3, 22 High Street"),
        ("3 / 22 High Street", "Flat 3, 22 High Street"),
        ("Apt 3, 22 High Street", "Flat 3, 22 High Street"),
        ("Apartment 3, 22 High St", "flat 3 22 high street"),
        ("7 Rose Gdns", "7 Rose Gardens"),
        ("1 Sea View Tce", "1 Sea View Terrace"),
    ],
)
def test_address_variants_are_equal(first: str, second: str) -> None:
    assert normalise_address(first) == normalise_address(second)


def test_address_examples() -> None:
    assert normalise_address("3/22 High St") == "flat 3 22 high street"
    assert normalise_address("12 Lane End Cl") == "12 lane end close"
    assert normalise_address("") is None
    assert normalise_address(" , ") is None
    assert normalise_address("3 22 High Street") != normalise_address("Flat 3, 22 High Street")


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT | st.text(alphabet="0123456789/ ,rdstRDSTflat", max_size=30))
def test_address_normalisation_is_folded_and_idempotent(value: str) -> None:
    once = normalise_address(value)
    if once is None:
        return
    assert FOLDED.match(once)
    assert normalise_address(once) == once


# --- foreign postcodes and several date formats ---------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(outward=OUTWARD, inward=INWARD, digits=st.from_regex(r"\A[0-9]{3,7}\Z"))
def test_uk_postcodes_are_uk_and_numeric_foreign_ones_stay_usable(
    outward: str, inward: str, digits: str
) -> None:
    assert normalise_postcode_or_foreign(f"{outward} {inward}") == (f"{outward} {inward}", True)
    assert normalise_postcode_or_foreign(f" {digits} ") == (digits, False)


@pytest.mark.parametrize("raw", ["SB3 2D", "QQ99 ZZZ", "12", "12345678", "AB-1234", "٤٠٦١"])
def test_values_neither_uk_nor_numeric_foreign_postcodes_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_postcode_or_foreign(raw)
    assert raw not in str(caught.value)


MIXED_FORMATS = ("%d/%m/%Y", "%d-%b-%Y", "%Y%m%d", "%d %B %Y")


@settings(max_examples=100, deadline=None)
@given(born=BIRTH_DATES, fmt=st.sampled_from(MIXED_FORMATS))
def test_a_column_may_mix_the_formats_its_mapping_lists(born: dt.date, fmt: str) -> None:
    assert normalise_birth_date(born.strftime(fmt), MIXED_FORMATS, today=TODAY) == born


def test_several_formats_keep_the_century_pivot_and_reject_what_none_fits() -> None:
    formats = ("%d/%m/%Y", "%d/%m/%y")
    assert parse_date("01/02/1968", formats, century_pivot=30) == dt.date(1968, 2, 1)
    assert parse_date("01/02/68", formats, century_pivot=30) == dt.date(1968, 2, 1)
    assert parse_date("01/02/29", formats, century_pivot=30) == dt.date(2029, 2, 1)
    with pytest.raises(InvalidValue):
        parse_date("1968-02-01", formats, century_pivot=30)
