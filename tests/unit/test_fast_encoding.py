"""The encoding hot path agrees byte for byte with the plain definitions it speeds up.

HMAC with precomputed key states against ``hmac.digest``; code books against a dict and a
list; table-numbered bigrams against ``np.unique``; 64-bit OR against the byte-wise OR; the
slicing CSV reader against ``csv.reader`` row by row; column-wise ISO dates against the
per-value normaliser; and whole batches (normalised through code books, encoded through them)
against a row-by-row reference built from ``field_tokens`` and ``positions``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bloom import BloomEncoder, TokenEncoder, or_rows
from gateway.codebook import CodedColumn, distinct
from gateway.encode import EncodingContext, encode_fields
from gateway.mapping import canonical_mapping
from gateway.normalise import InvalidValue, normalise_birth_date, parse_date
from gateway.prf import KeyedHash
from gateway.records import NormalisedRecords, normalise_column, normalise_rows, read_csv_columns
from gateway.schema import default_v1_schema
from gateway.tokenise import field_tokens, sorted_codes
from keys import KeyPurpose, LinkageSecret, derive_key

KEY = bytes(range(32))
TODAY = dt.date(2026, 6, 1)
VALUES = st.none() | st.sampled_from(["ann", "bob", "Ann", "", "zoë"]) | st.text(max_size=4)
DATE_TEXT = st.one_of(
    st.dates(min_value=dt.date(1850, 1, 1), max_value=dt.date(2040, 1, 1)).map(str),
    st.text(alphabet=st.sampled_from(list("0123456789- /\t")), max_size=12),
    st.dates().map(lambda d: f" {d} "),
)
NAMES = st.sampled_from(["Ann", "ANNE", "Bob", "Robert", "Zoë", "", " ", "Dr Ann", "o'neil"])


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(max_size=200),
    messages=st.lists(st.binary(max_size=300), max_size=6),
    algorithm=st.sampled_from(["sha256", "sha512"]),
    size=st.none() | st.integers(1, 64),
)
def test_keyed_hash_is_hmac(
    key: bytes, messages: list[bytes], algorithm: str, size: int | None
) -> None:
    keyed = KeyedHash(key, algorithm)
    want = [hmac.digest(key, m, algorithm) for m in messages]
    assert [keyed.digest(m) for m in messages] == want
    assert keyed.digests(messages, size) == b"".join(w[:size] for w in want)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(VALUES, max_size=30))
def test_code_books_hold_every_value_in_first_seen_order(values: list[str | None]) -> None:
    unique, rows = distinct(values)
    assert unique == list(dict.fromkeys(values))
    assert [unique[r] for r in rows.tolist()] == values
    coded = CodedColumn(unique, rows)
    assert coded.expand() == values
    assert coded.present().tolist() == [v is not None for v in values]


@settings(max_examples=60, deadline=None)
@given(codes=st.lists(st.integers(0, 65_535), max_size=60), big=st.booleans())
def test_table_numbered_codes_are_np_unique(codes: list[int], big: bool) -> None:
    array = np.array(codes, dtype=np.uint64)
    bound = 1 << 40 if big else 1 << 16  # the sorting branch, and the table branch
    unique, inverse = sorted_codes(array, bound)
    want_unique, want_inverse = np.unique(array, return_inverse=True)
    assert unique.tolist() == want_unique.tolist()
    assert inverse.tolist() == want_inverse.reshape(-1).tolist()


@settings(max_examples=60, deadline=None)
@given(
    width=st.sampled_from([1, 3, 8, 16, 64]),
    tokens=st.integers(1, 9),
    rows=st.integers(0, 7),
    slots=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_word_wise_or_is_the_byte_wise_or(
    width: int, tokens: int, rows: int, slots: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 256, (tokens, width), dtype=np.uint8)
    ids = rng.integers(0, tokens, (rows, slots))
    want = np.zeros((rows, width), dtype=np.uint8)
    for row in range(rows):
        for slot in range(slots):
            want[row] |= table[ids[row, slot]]
    assert or_rows(table, ids).tobytes() == want.tobytes()


def _csv_reference(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The reader's contract, row by row: blank lines skipped, short rows padded, long cut."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = [(r + [""] * len(header))[: len(header)] for r in reader if r]
    return header, {name: [row[i] for row in rows] for i, name in enumerate(header)}


CELLS = st.text(alphabet=st.sampled_from(list('ab ,"\né1')), max_size=5)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(st.sampled_from(["a", "b", "c", "record_id"]), min_size=1, max_size=4),
    rows=st.lists(st.lists(CELLS, max_size=5), max_size=6),
)
def test_csv_columns_equal_a_row_by_row_reading(
    tmp_path: Path, header: list[str], rows: list[list[str]]
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "in.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    assert read_csv_columns(path) == _csv_reference(buffer.getvalue())


def _per_value_birth_date(value: str) -> dt.date | str | None:
    try:
        return normalise_birth_date(value, today=TODAY)
    except InvalidValue:
        return "invalid"


@settings(max_examples=150, deadline=None)
@given(values=st.lists(DATE_TEXT, max_size=12))
def test_column_dates_equal_the_per_value_normaliser(values: list[str]) -> None:
    mapping = canonical_mapping("t", ["record_id", "date_of_birth", "event_date"])
    coded, report = normalise_column(
        "date_of_birth", values, mapping.columns["date_of_birth"], TODAY
    )
    want = [_per_value_birth_date(v) for v in values]
    assert coded.expand() == [None if w == "invalid" else w for w in want]
    assert report.invalid == want.count("invalid")
    assert report.first_invalid_rows == [i + 2 for i, w in enumerate(want) if w == "invalid"][:5]
    assert (
        report.missing == want.count(None)
        and report.valid == len(values) - report.invalid - report.missing
    )
    events, _ = normalise_column("event_date", values, mapping.columns["event_date"], TODAY)
    for value, got in zip(values, events.expand(), strict=True):
        try:
            assert got == (parse_date(value.strip()) if value.strip() else None)
        except InvalidValue:
            assert got is None


def _reference_row(encoder: BloomEncoder | TokenEncoder, value: str | dt.date | None) -> bytes:
    if value is None:
        return bytes(encoder.spec.nbytes)
    if isinstance(encoder, TokenEncoder):
        return hmac.digest(encoder._key, str(value).encode("utf-8"), "sha256")[:16]
    bits = np.zeros(encoder.spec.bits, dtype=np.bool_)
    for token in field_tokens(encoder.spec, value):
        bits[list(encoder.positions(token))] = True
    return np.packbits(bits, bitorder="big").tobytes()


@settings(max_examples=40, deadline=None)
@given(
    people=st.lists(
        st.tuples(NAMES, NAMES, DATE_TEXT, st.sampled_from(["SB3 2DL", "sb32dl", "x", ""])),
        min_size=1,
        max_size=8,
    )
)
def test_batches_encode_as_the_row_by_row_reference(
    people: list[tuple[str, str, str, str]],
) -> None:
    header = ["record_id", "given_name", "family_name", "date_of_birth", "postcode"]
    rows = [dict(zip(header, (f"r{i}", *p), strict=True)) for i, p in enumerate(people)]
    records = normalise_rows(rows, canonical_mapping("t", header), today=TODAY)
    schema = default_v1_schema()  # unsalted fields: the reference encodes no salts
    context = EncodingContext(schema, "p", "1", 0, schema.fields)
    secret = LinkageSecret(KEY)
    fast = encode_fields(records, schema.fields, secret=secret, context=context)
    plain = NormalisedRecords(records.record_ids, records.values, records.report)  # no books
    assert not plain.coded
    slow = encode_fields(plain, schema.fields, secret=secret, context=context)
    for spec in schema.fields:
        purpose = KeyPurpose.BLOOM if spec.encoding == "bloom" else KeyPurpose.TOKEN
        key = derive_key(secret, purpose=purpose, policy_id="p", epoch=0, field=spec.name)
        encoder = BloomEncoder(spec, key) if spec.encoding == "bloom" else TokenEncoder(spec, key)
        column = records.values.get(spec.name, [None] * len(records))
        want = b"".join(_reference_row(encoder, v) for v in column)
        assert fast.values[spec.name].tobytes() == want, spec.name
        assert slow.values[spec.name].tobytes() == want, spec.name
        assert fast.present[spec.name].tolist() == [v is not None for v in column]
