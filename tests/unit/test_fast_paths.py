"""The fast paths of the gateway agree exactly with the definitions they speed up.

Column-wise normalisers against the per-value functions, vectorised tokenisation against
``field_tokens``, batched HMAC positions against ``positions``, per-distinct-value encoding
against a row-by-row reference, and two-process encoding against one process.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import pseudonyms as pseudonyms_module
from gateway.bloom import BloomEncoder, TokenEncoder, distinct
from gateway.columns import INVALID, Invalid, addresses, nhs_numbers
from gateway.encode import EncodedColumns
from gateway.normalise import InvalidValue, normalise_address, normalise_nhs_number
from gateway.parallel import normalise_and_encode
from gateway.pipeline import context_without_policy
from gateway.pseudonyms import PseudonymMap
from gateway.records import NormalisedRecords, read_csv_columns
from gateway.schema import default_schema
from gateway.tokenise import field_tokens, token_ids
from keys import LinkageSecret
from keys.errors import InputError
from placelink.town import generate_town, write_canonical_csv
from policies.linkage_schema import FieldSpec

KEY = bytes(range(32))
ADDRESS_TEXT = st.text(alphabet=st.sampled_from(list("0123456789/ ,.'-rdstflaptRDSTFLAPT\té’\x00")))
NHS_TEXT = st.text(alphabet=st.sampled_from(list("0123456789 -\t٣x")), max_size=14)
SPECS = [
    FieldSpec("given_name", "given_name", "bloom", ngram=2, bits=256, hashes=20),
    FieldSpec("postcode", "postcode", "bloom", ngram=2, bits=128, hashes=10),
    FieldSpec("address", "address", "bloom", ngram=3, bits=512, hashes=16),
    FieldSpec("family_name", "family_name", "bloom", ngram=1, bits=64, hashes=3),
]
TEXTS = st.text(alphabet=st.sampled_from(list("abcxyz 09AZé")), max_size=12)
DATES = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


def _per_value(function: object, values: list[str]) -> list[object]:
    out: list[object] = []
    for value in values:
        try:
            out.append(function(value))  # type: ignore[operator]
        except InvalidValue:
            out.append(INVALID)
    return out


@settings(max_examples=200, deadline=None)
@given(values=st.lists(ADDRESS_TEXT, max_size=8))
def test_column_addresses_equal_the_per_value_normaliser(values: list[str]) -> None:
    assert addresses(values) == _per_value(normalise_address, values)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(NHS_TEXT | st.sampled_from(["9434765919", "943 476 5919", "9434765918"])))
def test_column_nhs_numbers_equal_the_per_value_normaliser(values: list[str]) -> None:
    got = nhs_numbers(values)
    want = _per_value(normalise_nhs_number, values)
    assert [isinstance(g, Invalid) for g in got] == [w is INVALID for w in want]
    assert [g for g in got if not isinstance(g, Invalid)] == [w for w in want if w is not INVALID]


@settings(max_examples=150, deadline=None)
@given(spec=st.sampled_from(SPECS), values=st.lists(TEXTS, min_size=1, max_size=8))
def test_token_ids_give_each_text_its_field_tokens(spec: FieldSpec, values: list[str]) -> None:
    vocabulary, ids = token_ids(spec, values)
    for row, value in enumerate(values):
        got = {vocabulary[i] for i in ids[row] if i < len(vocabulary)}
        assert got == set(field_tokens(spec, value))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(DATES, min_size=1, max_size=8))
def test_token_ids_give_each_date_its_date_tokens(values: list[dt.date]) -> None:
    spec = FieldSpec("date_of_birth", "date", "bloom", bits=128, hashes=16)
    vocabulary, ids = token_ids(spec, list(values))
    for row, value in enumerate(values):
        assert {vocabulary[i] for i in ids[row]} == set(field_tokens(spec, value))


def _reference_filter(encoder: BloomEncoder, value: str | dt.date | None) -> np.ndarray:
    bits = np.zeros(encoder.spec.bits, dtype=np.bool_)
    if value is not None:
        for token in field_tokens(encoder.spec, value):
            bits[list(encoder.positions(token))] = True
    return np.packbits(bits, bitorder="big")


@settings(max_examples=100, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    values=st.lists(st.none() | TEXTS | DATES, max_size=10),
)
def test_encode_many_equals_the_row_by_row_reference(
    spec: FieldSpec, values: list[str | dt.date | None]
) -> None:
    encoder = BloomEncoder(spec, KEY)
    got = encoder.encode_many(values)
    assert got.shape == (len(values), spec.nbytes)
    for row, value in enumerate(values):
        assert bytes(got[row]) == bytes(_reference_filter(encoder, value))


@settings(max_examples=50, deadline=None)
@given(tokens=st.lists(st.text(max_size=6), min_size=1, max_size=6), hashes=st.integers(1, 40))
def test_position_matrix_equals_positions(tokens: list[str], hashes: int) -> None:
    encoder = BloomEncoder(FieldSpec("f", "given_name", "bloom", bits=192, hashes=hashes), KEY)
    matrix = encoder.position_matrix(tokens)
    for row, token in enumerate(tokens):
        assert tuple(matrix[row].tolist()) == encoder.positions(token)


def test_distinct_keeps_first_seen_order_and_none() -> None:
    unique, index = distinct(["b", None, "a", "b", None])
    assert unique == ["b", None, "a"]
    assert index.tolist() == [0, 1, 2, 0, 1]
    tokens = TokenEncoder(FieldSpec("sex", "sex", "token"), KEY).encode_many([None, None])
    assert tokens.shape == (2, 16) and not tokens.any()


@pytest.mark.slow
def test_two_processes_encode_the_same_bytes_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where numba is installed, the salted copies run the compiled loops (made worth it for
    this batch), which the child loads: this process never imports them."""
    from gateway import copy_kernels

    monkeypatch.setattr(copy_kernels, "COMPILED_FROM_RECORDS", 0)
    monkeypatch.setattr(copy_kernels, "_loops", None)
    town = generate_town(seed=5, people=17_000)
    rows = [row for agency in town.canonical_rows.values() for row in agency]
    for row in (6, 7, len(rows) // 2 + 3, len(rows) - 2):  # invalid, in several groups
        rows[row] = {**rows[row], "nhs_number": "12345"}
    path = tmp_path / "all.csv"
    write_canonical_csv(rows, path)
    header, columns = read_csv_columns(path)
    from gateway.mapping import canonical_mapping

    mapping = canonical_mapping("all", header)
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    secret = LinkageSecret(KEY)
    today = dt.date(2027, 1, 1)
    pseudonyms = PseudonymMap()  # drawn, and its saved form made, while the child works

    def run(workers: int) -> tuple[NormalisedRecords, EncodedColumns]:
        return normalise_and_encode(
            columns,
            len(rows),
            mapping,
            secret=secret,
            context=context,
            today=today,
            workers=workers,
            pseudonyms=pseudonyms if workers == 2 else None,
        )

    assert len(rows) >= 20_000  # large enough to fork
    two, two_encoded = run(2)
    assert copy_kernels._loops is None  # the child loaded (or, without numba, skipped) them
    one, one_encoded = run(1)
    assert (copy_kernels._loops is not None) == copy_kernels.COMPILED  # this process's own
    assert one.record_ids == two.record_ids
    assert list(one.report) == list(two.report)
    assert one.report["nhs_number"].first_invalid_rows == [8, 9, len(rows) // 2 + 5, len(rows)]
    assert {k: vars(v) for k, v in one.report.items()} == {
        k: vars(v) for k, v in two.report.items()
    }
    for name in one_encoded.values:
        assert np.array_equal(one_encoded.values[name], two_encoded.values[name]), name
        assert np.array_equal(one_encoded.present[name], two_encoded.present[name]), name
    raw = pseudonyms.pseudonyms_for(two.record_ids)  # the pseudonyms drawn during the run
    pseudonyms.save(tmp_path / "all.clks.ids")
    by_record = PseudonymMap.load(tmp_path / "all.clks.ids").by_record
    assert bytes.fromhex("".join(map(by_record.__getitem__, two.record_ids))) == raw


@pytest.mark.parametrize(
    "dropped",
    [("given_name",), ("date_of_birth", "postcode"), ("given_name", "family_name", "address")],
)
def test_two_processes_encode_a_file_that_lacks_fields_as_one_does(
    tmp_path: Path, dropped: tuple[str, ...]
) -> None:
    """Fields of the schema that the file lacks (salted names, what salts are made from)
    are absent in every record, with two processes as with one; no turn takes them."""
    town = generate_town(seed=6, people=17_000)
    rows = [row for agency in town.canonical_rows.values() for row in agency]
    path = tmp_path / "some.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        kept = [name for name in rows[0] if name not in dropped]
        writer = csv.DictWriter(handle, kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    header, columns = read_csv_columns(path)
    from gateway.mapping import canonical_mapping

    mapping = canonical_mapping("some", header)
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    one, two = (
        normalise_and_encode(columns, len(rows), mapping, secret=LinkageSecret(KEY),
                             context=context, today=dt.date(2027, 1, 1), workers=workers)
        for workers in (1, 2)
    )  # fmt: skip
    assert {k: vars(v) for k, v in one[0].report.items()} == {
        k: vars(v) for k, v in two[0].report.items()
    }
    assert set(one[1].values) == set(two[1].values) == {spec.name for spec in context.fields}
    for name in one[1].values:
        assert np.array_equal(one[1].values[name], two[1].values[name]), name
        assert np.array_equal(one[1].present[name], two[1].present[name]), name
    for name in dropped:
        assert not two[1].present[name].any()


@settings(max_examples=60, deadline=None)
@given(
    record_ids=st.lists(
        st.text(alphabet=st.sampled_from(list('Pr-0159 é",\n')), max_size=9), unique=True
    )
)
def test_a_first_map_is_saved_as_the_line_by_line_writer_saves_it(
    tmp_path_factory: pytest.TempPathFactory, record_ids: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("ids")
    drawn = PseudonymMap()
    raw = drawn.pseudonyms_for(record_ids)
    with patch.object(pseudonyms_module, "_LINES_PER_BLOCK", 3):  # lines made in many blocks
        drawn.save(folder / "fast.ids")  # straight from the drawn bytes where IDs are plain
    assert raw == bytes.fromhex("".join(map(drawn.by_record.__getitem__, record_ids)))
    PseudonymMap(drawn.by_record).save(folder / "slow.ids")  # from the dict, line by line
    assert (folder / "fast.ids").read_bytes() == (folder / "slow.ids").read_bytes()
    assert PseudonymMap.load(folder / "fast.ids").by_record == drawn.by_record


def test_two_processes_refuse_a_repeated_record_id_as_one_does() -> None:
    count = 20_000
    columns = {
        "record_id": [f"R{i}" for i in range(count - 1)] + ["R7"],  # row 20,001 repeats row 9
        "given_name": ["ANN", "BOB", "CARL", "DEE"] * (count // 4),
        "nhs_number": [str(9_000_000_000 + i) for i in range(count)],
    }
    from gateway.mapping import canonical_mapping

    mapping = canonical_mapping("all", list(columns))
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    for workers in (1, 2):
        with pytest.raises(InputError, match="row 20001: the record ID is empty or repeated"):
            normalise_and_encode(
                columns,
                count,
                mapping,
                secret=LinkageSecret(KEY),
                context=context,
                today=dt.date(2027, 1, 1),
                workers=workers,
                pseudonyms=PseudonymMap(),
            )


def test_a_map_staged_by_prepare_is_saved_by_a_rename_and_is_the_map_save_writes(
    tmp_path: Path,
) -> None:
    record_ids = [f"R{i}" for i in range(500)]
    staged = PseudonymMap()
    staged.stage_at(tmp_path / "a.ids")
    staged.prepare(record_ids, distinct=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ids.tmp"]  # the map is untouched
    assert (tmp_path / "a.ids.tmp").stat().st_mode & 0o777 == 0o600
    raw = staged.pseudonyms_for(record_ids)
    staged.save(tmp_path / "a.ids")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ids"]
    plain = PseudonymMap(staged.by_record)
    plain.save(tmp_path / "b.ids")
    assert (tmp_path / "a.ids").read_bytes() == (tmp_path / "b.ids").read_bytes()
    loaded = PseudonymMap.load(tmp_path / "a.ids").by_record
    assert bytes.fromhex("".join(map(loaded.__getitem__, record_ids))) == raw


def test_a_staged_map_that_changes_afterwards_is_saved_as_it_now_is(tmp_path: Path) -> None:
    staged = PseudonymMap()
    staged.stage_at(tmp_path / "a.ids")
    staged.prepare(["R1", "R2"], distinct=True)
    staged.pseudonym_for("R3")  # a change after staging: the staged file is stale
    assert not (tmp_path / "a.ids.tmp").exists()
    staged.save(tmp_path / "a.ids")
    assert set(PseudonymMap.load(tmp_path / "a.ids").by_record) == {"R1", "R2", "R3"}


ID_TEXT = st.text(alphabet=st.sampled_from(list('Pr-0159 é",\n')), max_size=9)


@settings(max_examples=150, deadline=None)
@given(saved=st.lists(ID_TEXT, unique=True), wanted=st.lists(ID_TEXT))
def test_a_loaded_map_looks_records_up_as_its_dictionary_does(
    tmp_path_factory: pytest.TempPathFactory, saved: list[str], wanted: list[str]
) -> None:
    """A saved map, loaded as arrays where its lines are plain (else as a dictionary), keeps
    every known record's pseudonym, draws one new pseudonym per new ID (a repeated new ID gets
    the same), and is saved as the line-by-line writer saves the same dictionary."""
    folder = tmp_path_factory.mktemp("ids")
    first = PseudonymMap()
    first.pseudonyms_for(saved)
    first.save(folder / "a.ids")
    known = dict(PseudonymMap.load(folder / "a.ids").by_record)
    loaded = PseudonymMap.load(folder / "a.ids")
    raw = loaded.pseudonyms_for(wanted)
    hexed = [raw[i : i + 16].hex() for i in range(0, len(raw), 16)]
    by_id: dict[str, str] = {}
    for record_id, pseudonym in zip(wanted, hexed, strict=True):
        assert by_id.setdefault(record_id, pseudonym) == pseudonym  # one per ID
        assert known.get(record_id, pseudonym) == pseudonym  # a known record keeps its own
    new = {by_id[r] for r in by_id if r not in known}
    assert len(new) == len(set(wanted) - set(known)) and not new & set(known.values())
    loaded.save(folder / "b.ids")
    PseudonymMap({**known, **by_id}).save(folder / "c.ids")  # the dictionary, line by line
    assert (folder / "b.ids").read_bytes() == (folder / "c.ids").read_bytes()


@settings(max_examples=300, deadline=None)
@given(
    record_ids=st.lists(st.text(alphabet="R0é,", max_size=4), min_size=1, max_size=6, unique=True),
    at=st.integers(0, 10_000),
    edit=st.sampled_from(["", " ", "A", "g", '"', "\r", "\n", ",", "\0", "\r\n", "\ufeff"]),
)
def test_map_lines_read_as_arrays_are_the_rows_csv_reads(
    tmp_path_factory: pytest.TempPathFactory, record_ids: list[str], at: int, edit: str
) -> None:
    """A map file edited anywhere (an upper-case or non-hex digit, a stray quote, CR, LF or
    comma): read as arrays only where its lines are exactly as saved, and then the rows that
    the csv module reads; any other readable file is read by the csv module itself."""
    path = tmp_path_factory.mktemp("ids") / "a.ids"
    drawn = PseudonymMap()
    drawn.pseudonyms_for(record_ids)
    drawn.save(path)
    text = path.read_text(encoding="utf-8")
    at %= len(text) + 1
    path.write_bytes((text[:at] + edit + text[at:]).encode("utf-8"))
    entries = pseudonyms_module._plain_entries(path.read_bytes())
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = {row["record_id"]: row["pseudonym"] for row in csv.DictReader(handle)}
    except (KeyError, csv.Error):
        assert entries is None
        return
    if entries is not None:
        hexed = entries.raw.hex()
        assert len(entries.raw) == 16 * len(entries.record_ids)
        pseudonyms = [hexed[i : i + 32] for i in range(0, len(hexed), 32)]
        assert dict(zip(entries.record_ids, pseudonyms, strict=True)) == rows
    if "\ufeff" not in text[:at] + edit:
        assert PseudonymMap.load(path).by_record == rows


def test_pseudonyms_follow_a_list_of_ids_that_changed_after_they_were_asked_for() -> None:
    pseudonyms = PseudonymMap()
    record_ids = ["R1", "R2"]
    first = pseudonyms.pseudonyms_for(record_ids)
    record_ids.append("R3")  # the same list, changed: the answer kept for it is stale
    second = pseudonyms.pseudonyms_for(record_ids)
    assert len(second) == 48 and second[:32] == first
    assert pseudonyms.pseudonyms_for(["R3", "R1"]) == second[32:] + first[:16]


def test_a_map_that_gained_no_record_is_not_written_again(tmp_path: Path) -> None:
    record_ids = [f"R{i}" for i in range(300)]
    first = PseudonymMap()
    first.pseudonyms_for(record_ids)
    first.save(tmp_path / "a.ids")
    before = (tmp_path / "a.ids").stat()
    again = PseudonymMap.load(tmp_path / "a.ids")
    again.stage_at(tmp_path / "a.ids")
    again.prepare(record_ids[::-1], distinct=True)  # all known: nothing to stage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ids"]
    again.save(tmp_path / "a.ids")
    after = (tmp_path / "a.ids").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    again.prepare([*record_ids, "R300"], distinct=True)  # one new record: staged and saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ids", "a.ids.tmp"]
    again.save(tmp_path / "a.ids")
    assert len(PseudonymMap.load(tmp_path / "a.ids").by_record) == 301


def test_re_encoding_keeps_every_records_pseudonym_and_adds_new_ones(tmp_path: Path) -> None:
    """Two processes: the second encode looks the records up in the loaded map (as arrays),
    leaves an unchanged map as it is, and draws pseudonyms for new records only."""
    from gateway.pipeline import encode_file
    from policies.clks import load_clks

    count = 20_000
    source, output = tmp_path / "in.csv", tmp_path / "out.clks"
    rows = [f"R{i},{9_000_000_000 + i}" for i in range(count)]
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)

    def encode(rows: list[str]) -> list[bytes]:
        source.write_text("\n".join(["record_id,nhs_number", *rows]) + "\n", encoding="utf-8")
        encode_file(source, output, secret=LinkageSecret(KEY), context=context,
                    today=dt.date(2027, 1, 1), workers=2)  # fmt: skip
        return [bytes(row) for row in load_clks(output.read_bytes()).pseudonyms]

    first = encode(rows)
    saved = (tmp_path / "out.clks.ids").stat().st_mtime_ns
    assert encode(rows) == first
    assert (tmp_path / "out.clks.ids").stat().st_mtime_ns == saved  # not written again
    grown = encode([*rows[::-1], f"NEW1,{9_100_000_000}"])  # another order, one new record
    assert grown[:-1] == first[::-1] and grown[-1] not in first
    by_record = PseudonymMap.load(tmp_path / "out.clks.ids").by_record
    assert len(by_record) == count + 1 and by_record["NEW1"] == grown[-1].hex()


def test_a_failed_encode_leaves_the_output_folder_as_it_was(tmp_path: Path) -> None:
    """Two processes stage the first map while encoding; a strict run that then fails on an
    invalid value removes it again, so the folder holds exactly the input."""
    from gateway.pipeline import encode_file

    count = 20_000
    source = tmp_path / "in.csv"
    lines = ["record_id,nhs_number"] + [f"R{i},{9_000_000_000 + i}" for i in range(count)]
    lines[5_000] = "R4999,12345"  # not an NHS number: strict refuses the file
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    with pytest.raises(InputError, match="nhs_number"):
        encode_file(source, tmp_path / "out.clks", secret=LinkageSecret(KEY), context=context,
                    strict=True, today=dt.date(2027, 1, 1), workers=2)  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_fields_of_many_distinct_values_are_encoded_in_groups_of_values() -> None:
    """Two processes share the work in turns; the NHS number and the address (keyed per
    value, nothing made from them) each become four turns, one per group of their values;
    the salted names and what their salts are made from stay whole."""
    from gateway.parallel import _splittable, _turns

    context = context_without_policy(default_schema(), policy_id="t", epoch=0)
    assert {"nhs_number", "address"} <= _splittable(context)
    assert not {"given_name", "family_name", "date_of_birth", "postcode"} & _splittable(context)
    turns = _turns({"nhs_number": 600.0, "address": 500.0, "sex": 40.0}, 1000, context)
    assert turns == [("nhs_number", 0, 4), ("nhs_number", 1, 4), ("nhs_number", 2, 4),
                     ("nhs_number", 3, 4), ("address", 0, 4), ("address", 1, 4),
                     ("address", 2, 4), ("address", 3, 4), ("sex", 0, 1)]  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(
        st.none() | st.text(alphabet=st.sampled_from(list("ab1 é-")), max_size=6), max_size=40
    ),
    parts=st.integers(1, 5),
)
def test_value_groups_put_equal_values_together_and_every_row_in_one_group(
    values: list[str | None], parts: int
) -> None:
    import pyarrow as pa

    from gateway.columnar import ArrowColumn, value_groups

    chunked = pa.chunked_array([values[:7], values[7:]], type=pa.string()).slice(2)
    groups = value_groups(chunked, parts)
    assert len(groups) == len(chunked) and ((groups >= 0) & (groups < parts)).all()
    by_value: dict[str | None, set[int]] = {}
    for value, group in zip(chunked.to_pylist(), groups.tolist(), strict=True):
        by_value.setdefault(value, set()).add(group)
    assert all(len(found) == 1 for found in by_value.values())
    column, seen = ArrowColumn(chunked), []
    for part in range(parts):
        rows, taken = column.group(part, parts)
        assert list(taken) == [chunked[int(r)].as_py() for r in rows]
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(chunked)))
