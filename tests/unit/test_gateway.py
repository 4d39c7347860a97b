"""Unit tests for the gateway: column mappings, records, Bloom and token encoders, pseudonyms,
the offline encode pipeline and policy enforcement on what leaves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.bloom import TOKEN_BYTES, BloomEncoder, TokenEncoder, date_tokens, field_tokens, ngrams
from gateway.encode import encode_records
from gateway.mapping import CANONICAL_FIELDS, canonical_mapping, load_mapping, parse_mapping
from gateway.normalise import postcode_sector
from gateway.pipeline import context_for_policy, context_without_policy, encode_csv, encode_file
from gateway.pseudonyms import PseudonymMap
from gateway.records import FieldReport, check_header, normalise_rows, read_csv_rows
from gateway.schema import default_schema
from keys import KeyPurpose, LinkageSecret, derive_key, new_secret
from keys.errors import ConfigError, InputError, PolicyError
from placelink.town import Town, generate_town, write_canonical_csv, write_town
from policies.clks import PSEUDONYM_BYTES, dump_clks, load_clks
from policies.decisions import ReleasedAttribute
from policies.linkage_schema import FieldSpec
from policies.model import Policy, parse_policy

TODAY = dt.date(2027, 1, 1)
IN_FORCE = dt.date(2026, 6, 1)
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "policies" / "examples" / "task-force.yaml"
HEADER = [
    "record_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "postcode",
    "address",
    "nhs_number",
    "event_date",
]
NAME_SPEC = FieldSpec("given_name", "given_name", "bloom", ngram=2, bits=256, hashes=20)
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
UTF8_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@pytest.fixture(scope="module")
def town() -> Town:
    return generate_town(seed=3, people=200)


def _row(record_id: str, **values: str) -> dict[str, str]:
    row = dict.fromkeys(HEADER, "")
    row["record_id"] = record_id
    row.update(values)
    return row


def _example_policy(**changes: Any) -> Policy:
    document = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    document.update(changes)
    return parse_policy(document)


def _bits(packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.unpackbits(packed, axis=-1, bitorder="big")


def _dice(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    bits_a, bits_b = _bits(a).astype(bool), _bits(b).astype(bool)
    return 2 * float((bits_a & bits_b).sum()) / float(bits_a.sum() + bits_b.sum())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- column mappings ---------------------------------------------------------------------------

MAPPING_YAML = """\
mapping_version: 1
source: police
columns:
  record_id: ref
  given_name: forename
  date_of_birth: {column: dob, format: "%d/%m/%y", century_pivot: 30}
  sex: {column: gender, codes: {"1": M, "2": F}}
  event_date: {column: incident_date, format: "%d/%m/%Y"}
"""


def test_a_valid_mapping_file_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "police.mapping.yaml"
    path.write_text(MAPPING_YAML, encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.source == "police"
    assert set(mapping.columns) == {"record_id", "given_name", "date_of_birth", "sex", "event_date"}
    record_id = mapping.rule("record_id")
    assert record_id is not None and record_id.column == "ref"
    assert record_id.format == "%Y-%m-%d"
    dob = mapping.rule("date_of_birth")
    assert dob is not None and (dob.column, dob.format, dob.century_pivot) == (
        "dob",
        "%d/%m/%y",
        30,
    )
    sex = mapping.rule("sex")
    assert sex is not None and sex.codes == {"1": "M", "2": "F"}
    assert mapping.rule("address") is None


def test_every_town_agency_mapping_parses_and_reads_like_the_canonical_file(town: Town) -> None:
    for agency, document in town.mappings.items():
        mapping = parse_mapping(document, where=agency)
        through_mapping = normalise_rows(iter(town.agency_rows[agency]), mapping, today=TODAY)
        canonical_rows = town.canonical_rows[agency]
        canonical = normalise_rows(
            iter(canonical_rows), canonical_mapping(agency, list(canonical_rows[0])), today=TODAY
        )
        assert through_mapping.record_ids == canonical.record_ids
        for field, values in through_mapping.values.items():
            assert values == canonical.values[field], f"{agency}: {field}"


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        ({"record_id": "ref", "favourite_colour": "colour"}, "favourite_colour"),
        ({"record_id": "ref", "Given_Name": "forename"}, "Given_Name"),
        ({"given_name": "forename"}, "record_id"),
        (
            {"record_id": "ref", "date_of_birth": {"column": "dob", "format": "%d/%m/%y"}},
            "columns.date_of_birth",
        ),
        (
            {"record_id": "ref", "event_date": {"column": "when", "format": "%y%m%d"}},
            "columns.event_date",
        ),
        ({"record_id": "ref", "sex": {"codes": {"1": "M"}}}, "columns.sex"),
        ({"record_id": "ref", "sex": 3}, "columns.sex"),
    ],
)
def test_mapping_errors_name_the_field(columns: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mapping({"columns": columns}, where="police.mapping.yaml")
    assert named in caught.value.message
    assert "police.mapping.yaml" in caught.value.message
    assert caught.value.fix


def test_a_two_digit_year_error_says_how_to_fix_it() -> None:
    columns = {"record_id": "ref", "date_of_birth": {"column": "dob", "format": "%d/%m/%y"}}
    with pytest.raises(ConfigError, match="two-digit year") as caught:
        parse_mapping({"columns": columns})
    assert "century_pivot" in caught.value.fix


@pytest.mark.parametrize("document", [None, [], {}, {"columns": ["record_id"]}])
def test_a_mapping_without_columns_is_refused(document: Any) -> None:
    with pytest.raises(ConfigError, match="no 'columns' mapping"):
        parse_mapping(document)


def test_unreadable_mapping_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping"):
        load_mapping(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {record_id: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read mapping"):
        load_mapping(bad)


def test_canonical_mapping_takes_only_canonical_columns_of_the_header() -> None:
    mapping = canonical_mapping("health", ["record_id", "given_name", "ward", "postcode"])
    assert list(mapping.columns) == ["record_id", "given_name", "postcode"]
    assert all(rule.column == name for name, rule in mapping.columns.items())
    assert set(canonical_mapping("x", HEADER).columns) == set(CANONICAL_FIELDS)


# --- records -----------------------------------------------------------------------------------

SECRET_LOOKING_POSTCODE = "QQ99 ZZZ"
SECRET_LOOKING_NHS = "1234567890"


def _rows_with_invalid_values() -> list[dict[str, str]]:
    return [
        _row("r1", given_name="Ann", postcode="SB3 2DL", nhs_number="9434765919"),
        _row("r2", given_name="Bob", postcode=SECRET_LOOKING_POSTCODE),
        _row("r3", given_name="", postcode="sb32dl", date_of_birth="1980-02-30"),
        _row("r4", given_name="Cy", postcode="NOT A POSTCODE", nhs_number=SECRET_LOOKING_NHS),
        _row("r5", given_name="Di", postcode=""),
    ]


def test_invalid_values_are_counted_per_field_and_treated_as_missing() -> None:
    rows = _rows_with_invalid_values()
    records = normalise_rows(iter(rows), canonical_mapping("t", HEADER), today=TODAY)
    assert records.record_ids == ["r1", "r2", "r3", "r4", "r5"]
    assert records.values["postcode"] == ["SB3 2DL", None, "SB3 2DL", None, None]
    postcode = records.report["postcode"]
    assert (postcode.valid, postcode.invalid, postcode.missing) == (2, 2, 1)
    assert postcode.first_invalid_rows == [3, 5]  # the header is row 1
    assert postcode.validity == pytest.approx(0.5)
    nhs = records.report["nhs_number"]
    assert (nhs.valid, nhs.invalid, nhs.missing) == (1, 1, 3)
    dob = records.report["date_of_birth"]
    assert (dob.invalid, dob.first_invalid_rows) == (1, [4])
    given = records.report["given_name"]
    assert (given.valid, given.invalid, given.missing) == (4, 0, 1)
    assert records.values["given_name"][2] is None


def test_strict_mode_names_fields_and_rows_but_never_values() -> None:
    rows = _rows_with_invalid_values()
    with pytest.raises(InputError) as caught:
        normalise_rows(
            iter(rows), canonical_mapping("t", HEADER), today=TODAY, strict=True, where="t.csv"
        )
    message = str(caught.value)
    for field in ("postcode", "nhs_number", "date_of_birth"):
        assert field in caught.value.message
    assert "given_name" not in caught.value.message
    assert "3, 4, 5" in caught.value.message
    assert "t.csv" in caught.value.message
    for value in (SECRET_LOOKING_POSTCODE, "NOT A POSTCODE", SECRET_LOOKING_NHS, "1980-02-30"):
        assert value not in message
    assert "--strict" in caught.value.fix


def test_first_invalid_rows_keep_at_most_five_rows() -> None:
    rows = [_row(f"r{i}", postcode="bad") for i in range(12)]
    records = normalise_rows(iter(rows), canonical_mapping("t", HEADER), today=TODAY)
    assert records.report["postcode"].invalid == 12
    assert records.report["postcode"].first_invalid_rows == [2, 3, 4, 5, 6]


def test_field_report_validity() -> None:
    assert FieldReport().validity == 1.0
    assert FieldReport(valid=3, invalid=1, missing=100).validity == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("ids", "row"),
    [(["a-17", "b", "a-17"], 4), (["a", "", "c"], 3), (["a", "   ", "c"], 3)],
)
def test_repeated_or_empty_record_ids_are_refused(ids: list[str], row: int) -> None:
    rows = [_row(record_id) for record_id in ids]
    with pytest.raises(InputError) as caught:
        normalise_rows(iter(rows), canonical_mapping("t", HEADER), today=TODAY, where="t.csv")
    assert f"t.csv, row {row}" in caught.value.message
    assert "a-17" not in str(caught.value)


def test_a_mapped_column_missing_from_the_header_is_named() -> None:
    mapping = parse_mapping({"columns": {"record_id": "ref", "postcode": "post_code"}})
    with pytest.raises(ConfigError) as caught:
        check_header(["ref", "postcode"], mapping, "police.csv")
    assert "post_code" in caught.value.message
    assert "police.csv" in caught.value.message
    check_header(["ref", "post_code"], mapping, "police.csv")


def test_encode_csv_refuses_a_mapping_naming_a_missing_column(tmp_path: Path) -> None:
    source = tmp_path / "police.csv"
    source.write_text("ref,forename\nP1,Ann\n", encoding="utf-8")
    mapping = tmp_path / "police.mapping.yaml"
    mapping.write_text("columns: {record_id: ref, family_name: surname}\n", encoding="utf-8")
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    with pytest.raises(ConfigError, match="surname"):
        encode_csv(
            source,
            secret=new_secret(),
            context=context,
            pseudonyms=PseudonymMap(),
            mapping_path=mapping,
            today=TODAY,
        )


def test_read_csv_rows_handles_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffrecord_id,given_name\nr1,Zoë\n".encode())
    header, rows = read_csv_rows(path)
    assert header == ["record_id", "given_name"]
    assert list(rows) == [{"record_id": "r1", "given_name": "Zoë"}]
    with pytest.raises(InputError, match="cannot read"):
        read_csv_rows(tmp_path / "absent.csv")


# --- Bloom and token encoders ------------------------------------------------------------------


def test_ngrams_examples() -> None:
    assert ngrams("ann", 2) == ["_a", "an", "nn", "n_"]
    assert ngrams("ab", 3) == ["_ab", "ab_"]
    assert ngrams("", 2) == ["__"]


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ", max_size=20), n=st.integers(1, 4)
)
def test_ngrams_cover_the_padded_text(text: str, n: int) -> None:
    assume(len(text) + 2 >= n)
    grams = ngrams(text, n)
    assert len(grams) == len(text) + 3 - n
    assert all(len(gram) == n for gram in grams)
    assert grams[0] + "".join(gram[-1] for gram in grams[1:]) == f"_{text}_"


def test_date_tokens_keep_year_and_pair_under_a_day_month_swap() -> None:
    tokens = date_tokens(dt.date(1980, 3, 7))
    assert tokens == ["y1980", "c198", "m03", "d07", "p0307"]
    swapped = date_tokens(dt.date(1980, 7, 3))
    assert set(tokens) & set(swapped) == {"y1980", "c198", "p0307"}
    slipped = date_tokens(dt.date(1981, 3, 7))
    assert set(tokens) & set(slipped) == {"c198", "m03", "d07", "p0307"}


def test_postcode_tokens_ignore_the_space() -> None:
    spec = FieldSpec("postcode", "postcode", "bloom", ngram=2, bits=128, hashes=10)
    assert field_tokens(spec, "SB3 2DL") == ngrams("SB32DL", 2)
    assert field_tokens(NAME_SPEC, "anne marie") == ngrams("anne marie", 2)


@settings(max_examples=100, deadline=None)
@given(token=UTF8_TEXT.filter(bool), hashes=st.integers(1, 40))
def test_positions_are_deterministic_per_key_in_range_and_differ_between_keys(
    token: str, hashes: int
) -> None:
    spec = FieldSpec("f", "given_name", "bloom", bits=256, hashes=hashes)
    first = BloomEncoder(spec, KEY_A).positions(token)
    again = BloomEncoder(spec, KEY_A).positions(token)
    other = BloomEncoder(spec, KEY_B).positions(token)
    assert first == again
    assert len(first) == hashes
    assert all(0 <= p < 256 for p in first)
    if hashes >= 4:
        assert first != other


def test_positions_are_hmac_sha512_under_the_field_key() -> None:
    spec = FieldSpec("f", "given_name", "bloom", bits=256, hashes=20)
    stream = hmac.new(KEY_A, b"\x00\x00\x00\x00_a", hashlib.sha512).digest()
    stream += hmac.new(KEY_A, b"\x00\x00\x00\x01_a", hashlib.sha512).digest()
    expected = tuple(int.from_bytes(stream[4 * i : 4 * i + 4], "big") % 256 for i in range(20))
    assert BloomEncoder(spec, KEY_A).positions("_a") == expected


@settings(max_examples=60, deadline=None)
@given(value=st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=15))
def test_set_bits_are_exactly_the_token_positions_most_significant_first(value: str) -> None:
    encoder = BloomEncoder(NAME_SPEC, KEY_A)
    packed = encoder.encode_many([value])
    assert packed.shape == (1, NAME_SPEC.bits // 8) and packed.dtype == np.uint8
    expected = {p for token in ngrams(value, 2) for p in encoder.positions(token)}
    assert set(np.flatnonzero(_bits(packed)[0]).tolist()) == expected
    first = min(expected)
    assert packed[0, first // 8] & (0x80 >> (first % 8))


def test_about_half_the_bits_are_set_for_typical_values(town: Town) -> None:
    rows = [row for agency in town.canonical_rows.values() for row in agency]
    records = normalise_rows(iter(rows), canonical_mapping("t", list(rows[0])), today=TODAY)
    schema = default_schema()
    secret = LinkageSecret(KEY_A)
    for spec in schema.fields:
        if spec.encoding != "bloom":
            continue
        values: list[str | dt.date | None] = [v for v in records.values[spec.name] if v is not None]
        assert len(values) > 200
        key = derive_key(secret, purpose=KeyPurpose.BLOOM, policy_id="t", epoch=0, field=spec.name)
        fill = _bits(BloomEncoder(spec, key).encode_many(values)).mean(axis=1)
        assert 0.3 <= float(fill.mean()) <= 0.75, spec.name
        assert 0.3 <= float(np.median(fill)) <= 0.75, spec.name
        assert float(fill.max()) < 0.9, spec.name


def test_dice_of_identical_values_is_one_and_similar_beats_different() -> None:
    encoder = BloomEncoder(NAME_SPEC, KEY_A)
    jonathan, again, jonathon, maria = encoder.encode_many(
        ["jonathan", "jonathan", "jonathon", "maria"]
    )
    assert _dice(jonathan, again) == 1.0
    assert np.array_equal(jonathan, again)
    assert _dice(jonathan, jonathon) > 0.6 > _dice(jonathan, maria)


def test_a_missing_value_gives_an_all_zero_row() -> None:
    for spec, encoder_type in (
        (NAME_SPEC, BloomEncoder),
        (FieldSpec("sex", "sex", "token"), TokenEncoder),
    ):
        out = encoder_type(spec, KEY_A).encode_many([None, "x", None])
        assert not out[0].any() and not out[2].any()
        assert out[1].any()


@settings(max_examples=100, deadline=None)
@given(first=UTF8_TEXT, second=UTF8_TEXT)
def test_token_encoder_equal_inputs_equal_tokens_different_keys_different_tokens(
    first: str, second: str
) -> None:
    spec = FieldSpec("nhs_number", "nhs_number", "token")
    tokens = TokenEncoder(spec, KEY_A).encode_many([first, first, second])
    assert tokens.shape == (3, TOKEN_BYTES)
    assert np.array_equal(tokens[0], tokens[1])
    assert np.array_equal(tokens[0], tokens[2]) == (first == second)
    other_key = TokenEncoder(spec, KEY_B).encode_many([first])
    assert not np.array_equal(tokens[0], other_key[0])
    digest = hmac.new(KEY_A, first.encode("utf-8"), hashlib.sha256).digest()[:TOKEN_BYTES]
    assert bytes(tokens[0]) == digest


def test_date_tokens_encode_a_date_value() -> None:
    spec = FieldSpec("date_of_birth", "date", "bloom", bits=128, hashes=16)
    encoder = BloomEncoder(spec, KEY_A)
    born, swapped = encoder.encode_many([dt.date(1980, 3, 7), dt.date(1980, 7, 3)])
    assert 0.0 < _dice(born, swapped) < 1.0


# --- pseudonyms --------------------------------------------------------------------------------

RECORD_IDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]) | st.sampled_from(",\"'\n"),
    min_size=1,
    max_size=16,
)


@settings(max_examples=60, deadline=None)
@given(record_id=RECORD_IDS)
def test_pseudonyms_are_random_32_hex_stable_and_not_derived_from_the_record_id(
    record_id: str,
) -> None:
    first_map, second_map = PseudonymMap(), PseudonymMap()
    pseudonym = first_map.pseudonym_for(record_id)
    assert re.fullmatch(r"[0-9a-f]{32}", pseudonym)
    assert len(bytes.fromhex(pseudonym)) == PSEUDONYM_BYTES
    assert first_map.pseudonym_for(record_id) == pseudonym
    assert second_map.pseudonym_for(record_id) != pseudonym
    assert hashlib.sha256(record_id.encode()).hexdigest()[:32] != pseudonym
    assert first_map.pseudonym_for(record_id + "x") != pseudonym
    assert first_map.record_for() == {
        pseudonym: record_id,
        first_map.by_record[record_id + "x"]: record_id + "x",
    }


@settings(max_examples=50, deadline=None)
@given(record_ids=st.lists(RECORD_IDS, max_size=10, unique=True))
def test_pseudonym_map_save_load_round_trip(record_ids: list[str]) -> None:
    pseudonyms = PseudonymMap()
    for record_id in record_ids:
        pseudonyms.pseudonym_for(record_id)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.clks.ids"
        pseudonyms.save(path)
        assert _mode(path) == 0o600
        loaded = PseudonymMap.load(path)
        assert not (Path(folder) / "a.clks.ids.tmp").exists()
    assert loaded.by_record == pseudonyms.by_record
    for record_id in record_ids:
        assert loaded.pseudonym_for(record_id) == pseudonyms.by_record[record_id]


def test_pseudonym_map_is_saved_owner_only_even_over_a_stale_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "a.clks.ids"
    stale = tmp_path / "a.clks.ids.tmp"
    stale.write_text("stale\n", encoding="utf-8")
    os.chmod(stale, 0o644)
    pseudonyms = PseudonymMap()
    pseudonyms.pseudonym_for("r1")
    pseudonyms.save(path)
    assert _mode(path) == 0o600
    assert PseudonymMap.load(path).by_record == pseudonyms.by_record


def test_a_missing_map_is_empty_and_a_damaged_one_is_an_input_error(tmp_path: Path) -> None:
    assert PseudonymMap.load(tmp_path / "absent.ids").by_record == {}
    damaged = tmp_path / "damaged.ids"
    damaged.write_text("id,pseudo\nr1,00\n", encoding="utf-8")
    with pytest.raises(InputError, match="pseudonym map") as caught:
        PseudonymMap.load(damaged)
    assert "r1" not in str(caught.value)


# --- the offline encode pipeline ---------------------------------------------------------------


@pytest.fixture(scope="module")
def housing_csv(town: Town, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("encode") / "housing.csv"
    write_canonical_csv(town.canonical_rows["housing"], path)
    return path


def _identifier_strings(rows: list[dict[str, str]]) -> set[str]:
    """Every identifier of the rows as written, folded and compacted, at least 5 characters."""
    found: set[str] = set()
    for row in rows:
        for name in (
            "record_id",
            "given_name",
            "family_name",
            "date_of_birth",
            "postcode",
            "address",
            "nhs_number",
        ):
            value = row[name].strip()
            for form in (
                value,
                value.lower(),
                value.upper(),
                value.replace(" ", ""),
                value.lower().replace(" ", "").replace("-", ""),
            ):
                if len(form) >= 5:
                    found.add(form)
    return found


def test_encode_file_writes_a_clks_file_and_an_ids_map(
    town: Town, housing_csv: Path, tmp_path: Path
) -> None:
    rows = town.canonical_rows["housing"]
    output = tmp_path / "housing.clks"
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    result = encode_file(housing_csv, output, secret=new_secret(), context=context)
    data = output.read_bytes()
    batch = load_clks(data)
    assert len(batch) == len(rows) == len(result.batch)
    assert [f.name for f in batch.fields] == [s.name for s in default_schema().fields]
    assert batch.attribute_names == ()
    assert batch.schema_hash == default_schema().sha256
    assert result.source == "housing"
    ids_path = tmp_path / "housing.clks.ids"
    assert _mode(ids_path) == 0o600
    by_pseudonym = PseudonymMap.load(ids_path).record_for()
    resolved = [by_pseudonym[batch.pseudonym_hex(row)] for row in range(len(batch))]
    assert resolved == [row["record_id"] for row in rows]
    assert not (tmp_path / "housing.clks.tmp").exists()


def test_no_identifier_and_no_unkeyed_hash_appears_in_the_clks_bytes(
    town: Town, housing_csv: Path, tmp_path: Path
) -> None:
    rows = town.canonical_rows["housing"]
    output = tmp_path / "housing.clks"
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    encode_file(housing_csv, output, secret=new_secret(), context=context)
    data = output.read_bytes()
    lowered = data.lower()
    identifiers = _identifier_strings(rows)
    assert len(identifiers) > 100
    for value in identifiers:
        encoded = value.encode("utf-8")
        assert encoded not in data, "an identifier appears in the .clks bytes"
        assert encoded.lower() not in lowered, "an identifier appears in the .clks bytes"
        digest = hashlib.sha256(encoded).digest()
        assert digest[:8] not in data
        assert digest.hex()[:16].encode() not in data


def test_re_encoding_keeps_pseudonyms_and_encodings(
    town: Town, housing_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "housing.clks"
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    secret = new_secret()
    first = encode_file(housing_csv, output, secret=secret, context=context).batch
    ids_before = (tmp_path / "housing.clks.ids").read_bytes()
    second = encode_file(housing_csv, output, secret=secret, context=context).batch
    assert np.array_equal(first.pseudonyms, second.pseudonyms)
    assert (tmp_path / "housing.clks.ids").read_bytes() == ids_before
    for name, values in first.values.items():
        assert np.array_equal(values, second.values[name])

    rows = town.canonical_rows["housing"]
    grown = tmp_path / "housing-grown.csv"
    write_canonical_csv([*rows, _row("NEW-1", given_name="Ann")], grown)
    third = encode_file(grown, output, secret=secret, context=context).batch
    assert np.array_equal(third.pseudonyms[: len(rows)], first.pseudonyms)
    assert third.pseudonym_hex(len(rows)) not in {first.pseudonym_hex(i) for i in range(len(rows))}


def test_another_secret_or_policy_gives_other_encodings(housing_csv: Path, tmp_path: Path) -> None:
    schema = default_schema()
    secret = new_secret()
    base = encode_file(
        housing_csv,
        tmp_path / "a.clks",
        secret=secret,
        context=context_without_policy(schema, policy_id="t", epoch=0),
    ).batch
    for other_secret, policy_id, epoch in (
        (new_secret(), "t", 0),
        (secret, "u", 0),
        (secret, "t", 1),
    ):
        other = encode_file(
            housing_csv,
            tmp_path / "b.clks",
            secret=other_secret,
            context=context_without_policy(schema, policy_id=policy_id, epoch=epoch),
        ).batch
        for name, values in base.values.items():
            present = base.present[:, [f.name for f in base.fields].index(name)]
            assert not np.array_equal(values[present], other.values[name][present]), name


def test_an_agency_file_through_its_mapping_encodes_like_the_canonical_file(
    town: Town, tmp_path: Path
) -> None:
    paths = write_town(town, tmp_path / "town")
    canonical = tmp_path / "health.csv"
    write_canonical_csv(town.canonical_rows["health"], canonical)
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    secret = new_secret()
    via_mapping = encode_csv(
        paths["health"],
        secret=secret,
        context=context,
        pseudonyms=PseudonymMap(),
        mapping_path=paths["health"].with_name("health.mapping.yaml"),
        today=TODAY,
    ).batch
    direct = encode_csv(
        canonical, secret=secret, context=context, pseudonyms=PseudonymMap(), today=TODAY
    ).batch
    assert np.array_equal(via_mapping.present, direct.present)
    for name, values in direct.values.items():
        assert np.array_equal(values, via_mapping.values[name]), name


def test_strict_encode_of_a_file_with_invalid_values_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    write_canonical_csv([_row("r1", postcode="SB3 2DL"), _row("r2", postcode="nonsense")], source)
    output = tmp_path / "bad.clks"
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    with pytest.raises(InputError, match="postcode"):
        encode_file(source, output, secret=new_secret(), context=context, strict=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    result = encode_file(source, output, secret=new_secret(), context=context)
    assert result.report["postcode"].invalid == 1
    assert load_clks(output.read_bytes()).present[:, 4].tolist() == [True, False]


def test_a_csv_without_record_id_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "noid.csv"
    source.write_text("given_name\nAnn\n", encoding="utf-8")
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    with pytest.raises(InputError, match="record_id"):
        encode_file(source, tmp_path / "noid.clks", secret=new_secret(), context=context)


# --- policy enforcement on what leaves ---------------------------------------------------------


def _normalised(town: Town, agency: str) -> Any:
    rows = town.canonical_rows[agency]
    return normalise_rows(iter(rows), canonical_mapping(agency, list(rows[0])), today=TODAY)


def test_a_policy_that_drops_address_yields_no_address_field(town: Town) -> None:
    document = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    for item in document["data_items"]:
        if item["field"] == "address":
            item["transform"] = "drop"
    policy = parse_policy(document)
    schema = default_schema()
    context = context_for_policy(policy, schema, epoch=0, today=IN_FORCE)
    names = [spec.name for spec in context.fields]
    assert "address" not in names
    assert names == [s.name for s in schema.fields if s.name != "address"]
    batch = encode_records(
        _normalised(town, "police"), secret=new_secret(), context=context, pseudonyms=PseudonymMap()
    )
    assert "address" not in batch.values
    loaded = load_clks(dump_clks(batch))
    assert [f.name for f in loaded.fields] == names
    assert loaded.policy_id == "seabrook-task-force" and loaded.policy_version == "1.0"


def test_attributes_leave_only_in_their_generalised_form(town: Town) -> None:
    records = _normalised(town, "health")
    context = context_for_policy(_example_policy(), default_schema(), epoch=0, today=IN_FORCE)
    assert [a.name for a in context.attributes] == ["area", "event_month"]
    batch = encode_records(records, secret=new_secret(), context=context, pseudonyms=PseudonymMap())
    areas = batch.attribute_column("area")
    months = batch.attribute_column("event_month")
    for row, (postcode, event) in enumerate(
        zip(records.values["postcode"], records.values["event_date"], strict=True)
    ):
        if postcode is None:
            assert areas[row] is None
        else:
            assert areas[row] == postcode_sector(str(postcode))
            assert re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]? [0-9]", str(areas[row]))
        assert isinstance(event, dt.date)
        assert months[row] == f"{event.year:04d}-{event.month:02d}"
    assert any(a is not None for a in areas)


def test_without_a_policy_no_attribute_leaves(town: Town) -> None:
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    batch = encode_records(
        _normalised(town, "police"), secret=new_secret(), context=context, pseudonyms=PseudonymMap()
    )
    assert batch.attribute_names == ()
    assert all(row == [] for row in batch.attributes)


def test_context_for_policy_refuses_an_inactive_expired_or_mismatched_policy() -> None:
    schema = default_schema()
    with pytest.raises(PolicyError, match="status 'suspended'"):
        context_for_policy(_example_policy(status="suspended"), schema, epoch=0, today=IN_FORCE)
    with pytest.raises(PolicyError, match="not in force"):
        context_for_policy(_example_policy(), schema, epoch=0, today=dt.date(2028, 1, 1))
    with pytest.raises(PolicyError, match="pins another linkage schema"):
        context_for_policy(
            _example_policy(linkage_schema="0" * 64), schema, epoch=0, today=IN_FORCE
        )


def test_an_unknown_generalisation_is_refused(town: Town) -> None:
    document = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    document["data_items"] = [
        {"id": "given_name", "field": "given_name", "category": "personal", "transform": "encode"},
        {
            "id": "where",
            "field": "postcode",
            "category": "personal",
            "transform": "generalise",
            "generalisation": "full_postcode",
            "attribute": "where",
        },
    ]
    with pytest.raises(PolicyError, match=r"data_items\[1\]\.generalisation"):
        parse_policy(document)  # the policy cannot even declare it
    # and should a context ever carry one, the gateway's generaliser refuses it too
    context = context_for_policy(_example_policy(), default_schema(), epoch=0, today=IN_FORCE)
    bad = dataclasses.replace(
        context, attributes=(ReleasedAttribute("where", "postcode", "full_postcode"),)
    )
    with pytest.raises(PolicyError, match="unknown generalisation"):
        encode_records(
            _normalised(town, "police"),
            secret=new_secret(),
            context=bad,
            pseudonyms=PseudonymMap(),
        )


# --- foreign postcodes, date format lists, the check report ------------------------------------


def test_a_foreign_postcode_is_reported_usable_and_released_as_no_area(town: Town) -> None:
    rows = [_row("r1", postcode="4061"), _row("r2", postcode="SB3 2DL"), _row("r3", postcode="x")]
    records = normalise_rows(iter(rows), canonical_mapping("t", HEADER), today=TODAY)
    assert records.values["postcode"] == ["4061", "SB3 2DL", None]
    report = records.report["postcode"]
    assert (report.valid, report.unverified, report.invalid) == (2, 1, 1)
    context = context_for_policy(_example_policy(), default_schema(), epoch=0, today=IN_FORCE)
    batch = encode_records(records, secret=new_secret(), context=context, pseudonyms=PseudonymMap())
    assert batch.attribute_column("area") == [None, "SB3 2", None]
    assert batch.present[:, 4].tolist() == [True, True, False]


def test_a_mapping_may_list_several_date_formats() -> None:
    columns = {
        "record_id": "ref",
        "date_of_birth": {"column": "dob", "format": ["%d/%m/%Y", "%d-%b-%Y"]},
    }
    mapping = parse_mapping({"columns": columns})
    rows = [{"ref": "a", "dob": "12/03/1980"}, {"ref": "b", "dob": "12-Mar-1980"}]
    records = normalise_rows(iter(rows), mapping, today=TODAY)
    assert records.values["date_of_birth"] == [dt.date(1980, 3, 12)] * 2
    with pytest.raises(ConfigError, match="century_pivot"):
        parse_mapping({"columns": {**columns, "date_of_birth": {"column": "d", "format": ["%y"]}}})


def test_check_csv_reports_without_encoding(tmp_path: Path) -> None:
    from gateway.pipeline import check_csv

    source = tmp_path / "a.csv"
    write_canonical_csv([_row("r1", postcode="4061"), _row("r2", nhs_number="1234567890")], source)
    count, report = check_csv(source, today=TODAY)
    assert count == 2
    assert report["postcode"].unverified == 1 and report["nhs_number"].invalid == 1
    assert report["nhs_number"].first_invalid_rows == [3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
