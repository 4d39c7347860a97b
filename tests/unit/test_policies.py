"""Unit tests for policies/: canonical hashes, linkage schema, .clks layout, policy model and
enforcement decisions."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import struct
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.schema import default_schema, default_schema_text
from keys.errors import AccessError, ConfigError, InputError, PolicyError
from policies.canonical import canonical_json, canonical_sha256, jsonable
from policies.clks import (
    FORMAT_VERSION,
    MAGIC,
    PSEUDONYM_BYTES,
    EncodedBatch,
    FieldLayout,
    dump_clks,
    load_clks,
)
from policies.decisions import (
    ReleasedAttribute,
    check_in_force,
    check_schema,
    encoded_fields,
    provider_for_key,
    released_attributes,
)
from policies.linkage_schema import FieldSpec, LinkageSchema, load_schema, parse_schema
from policies.model import TOP_LEVEL_KEYS, Policy, load_policy, parse_policy, policy_hash

EXAMPLE = Path(str(resources.files("policies").joinpath("examples/task-force.yaml")))
IN_FORCE = dt.date(2026, 6, 1)
PROVIDER_KEY = "ed25519:" + "ab" * 32
LINKAGE_KEY = "ed25519:" + "cd" * 32


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return document


def example_policy(**changes: Any) -> Policy:
    document = example_document()
    document.update(changes)
    return parse_policy(document, where="test policy")


# --- canonical JSON ------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=6))
def test_key_order_does_not_change_the_canonical_hash(value: dict[str, Any]) -> None:
    assert canonical_json(_reversed_keys(value)) == canonical_json(value)
    assert canonical_sha256(_reversed_keys(value)) == canonical_sha256(value)
    assert canonical_sha256(value) == hashlib.sha256(canonical_json(value)).hexdigest()


@settings(max_examples=60, deadline=None)
@given(value=st.dictionaries(st.text(min_size=1, max_size=6), JSON_VALUES, max_size=6))
def test_yaml_formatting_does_not_change_the_canonical_hash(value: dict[str, Any]) -> None:
    block = yaml.safe_dump(value, sort_keys=True, default_flow_style=False)
    flow = yaml.safe_dump(value, sort_keys=False, default_flow_style=True, width=10_000)
    quoted = yaml.safe_dump(value, sort_keys=False, default_style='"')
    hashes = {canonical_sha256(yaml.safe_load(text)) for text in (block, flow, quoted)}
    assert hashes == {canonical_sha256(value)}


def test_comments_and_layout_of_the_default_schema_do_not_change_its_hash() -> None:
    text = default_schema_text()
    reformatted = yaml.safe_dump(yaml.safe_load(text), sort_keys=True, indent=4)
    assert "#" not in reformatted
    assert parse_schema(yaml.safe_load(reformatted)).sha256 == default_schema().sha256


def test_dates_hash_as_iso_strings() -> None:
    as_dates = yaml.safe_load("effective_from: 2026-01-01\nat: 2026-01-01 10:30:00\n")
    as_text = yaml.safe_load("effective_from: '2026-01-01'\nat: '2026-01-01T10:30:00'\n")
    assert isinstance(as_dates["effective_from"], dt.date)
    assert jsonable(as_dates) == as_text
    assert canonical_json(as_dates) == b'{"at":"2026-01-01T10:30:00","effective_from":"2026-01-01"}'
    assert canonical_sha256(as_dates) == canonical_sha256(as_text)


def test_canonical_json_is_rfc8785_for_a_known_value() -> None:
    value = {"b": [1, "é", None, True], "a": {"z": 1, "y": dt.date(2026, 2, 3)}}
    assert canonical_json(value) == '{"a":{"y":"2026-02-03","z":1},"b":[1,"é",null,true]}'.encode()


def test_a_changed_value_changes_the_canonical_hash() -> None:
    assert canonical_sha256({"a": 1}) != canonical_sha256({"a": 2})
    assert canonical_sha256({"a": "1"}) != canonical_sha256({"a": 1})


# --- linkage schema ------------------------------------------------------------------------------


def _schema_document(**field: Any) -> dict[str, Any]:
    return {"name": "t", "schema_version": 1, "fields": {"given_name": field}}


@pytest.mark.parametrize(
    ("field", "message", "fix"),
    [
        ({"encoding": "rot13"}, "encoding 'rot13'", "use 'bloom' or 'token'"),
        ({"normalise": "soundex", "encoding": "token"}, "unknown normaliser", "use one of"),
        ({"encoding": "bloom", "bits": 100, "hashes": 20}, "multiple of 64", "bits: 256"),
        ({"encoding": "bloom", "bits": 0, "hashes": 20}, "multiple of 64", "bits: 256"),
        ({"encoding": "bloom", "bits": 256, "hashes": 0}, "hashes > 0", "hashes: 20"),
        ({"encoding": "bloom", "bits": 256}, "hashes > 0", "hashes: 20"),
        ("bloom", "must be a mapping", "docs/formats.md"),
    ],
)
def test_schema_parse_errors_name_the_field_and_the_fix(field: Any, message: str, fix: str) -> None:
    document = {"name": "t", "fields": {"given_name": field}}
    with pytest.raises(ConfigError) as caught:
        parse_schema(document, where="schemas/t.yaml")
    assert "'given_name'" in caught.value.message
    assert "schemas/t.yaml" in caught.value.message
    assert message in caught.value.message
    assert fix in caught.value.fix


@pytest.mark.parametrize("document", [None, [], {}, {"fields": []}, {"fields": {}}])
def test_schema_without_fields_is_refused(document: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_schema(document, where="s.yaml")
    assert "s.yaml" in caught.value.message
    assert caught.value.fix


def test_schema_field_nbytes() -> None:
    schema = default_schema()
    sizes = {spec.name: spec.nbytes for spec in schema.fields}
    assert sizes == {
        "given_name": 64,  # two copies (salted by date of birth, by postcode)
        "family_name": 64,
        "date_of_birth": 16,
        "sex": 16,
        "postcode": 16,
        "address": 64,
        "nhs_number": 16,
    }
    assert FieldSpec("x", "given_name", "bloom", bits=1024, hashes=3).nbytes == 128
    assert FieldSpec("x", "sex", "token", bits=1024).nbytes == 16


def test_schema_defaults_and_field_lookup() -> None:
    schema = parse_schema(_schema_document(encoding="bloom", bits=64, hashes=2))
    spec = schema.field("given_name")
    assert (spec.normalise, spec.ngram, spec.bits, spec.hashes) == ("given_name", 2, 64, 2)
    assert schema.version == 1
    with pytest.raises(ConfigError, match="no field 'nhs_number'"):
        schema.field("nhs_number")


def test_load_schema_reads_a_file_and_reports_bad_yaml(tmp_path: Path) -> None:
    good = tmp_path / "schema.yaml"
    good.write_text(default_schema_text(), encoding="utf-8")
    assert load_schema(good).sha256 == default_schema().sha256
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields: {given_name: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the linkage schema"):
        load_schema(bad)
    with pytest.raises(ConfigError, match="cannot read the linkage schema"):
        load_schema(tmp_path / "absent.yaml")


def test_any_change_of_a_schema_changes_its_hash() -> None:
    document = yaml.safe_load(default_schema_text())
    base = parse_schema(document).sha256
    changed = copy.deepcopy(document)
    changed["fields"]["given_name"]["hashes"] = 21
    assert parse_schema(changed).sha256 != base


# --- .clks layout --------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
ATTRIBUTE_VALUES = st.none() | st.text(alphabet=st.characters(codec="utf-8"), max_size=10)


@st.composite
def batches(draw: st.DrawFn, max_records: int = 5) -> EncodedBatch:
    count = draw(st.integers(0, max_records))
    field_names = draw(st.lists(NAMES, max_size=3, unique=True))
    fields = tuple(
        FieldLayout(name, draw(st.sampled_from(["bloom", "token"])), draw(st.integers(1, 9)))
        for name in field_names
    )
    attribute_names = tuple(draw(st.lists(NAMES, max_size=3, unique=True)))

    def matrix(width: int) -> Any:
        raw = draw(st.binary(min_size=count * width, max_size=count * width))
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, width).copy()

    return EncodedBatch(
        schema_hash=draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)),
        policy_id=draw(NAMES),
        policy_version=draw(st.sampled_from(["1.0", "unversioned", "2"])),
        epoch=draw(st.integers(0, 2**31)),
        fields=fields,
        attribute_names=attribute_names,
        pseudonyms=matrix(PSEUDONYM_BYTES),
        present=np.array(
            [[draw(st.booleans()) for _ in fields] for _ in range(count)], dtype=bool
        ).reshape(count, len(fields)),
        values={f.name: matrix(f.nbytes) for f in fields},
        attributes=[[draw(ATTRIBUTE_VALUES) for _ in attribute_names] for _ in range(count)],
    )


def _assert_same_batch(got: EncodedBatch, want: EncodedBatch) -> None:
    assert got.header() == want.header()
    assert len(got) == len(want)
    assert got.fields == want.fields
    assert got.attribute_names == want.attribute_names
    assert np.array_equal(got.pseudonyms, want.pseudonyms)
    assert np.array_equal(got.present, want.present)
    assert set(got.values) == set(want.values)
    for name, values in want.values.items():
        assert np.array_equal(got.values[name], values)
    assert got.attributes == want.attributes


@settings(max_examples=150, deadline=None)
@given(batch=batches())
def test_clks_dump_load_round_trip(batch: EncodedBatch) -> None:
    data = dump_clks(batch)
    loaded = load_clks(data)
    _assert_same_batch(loaded, batch)
    assert dump_clks(loaded) == data
    for row in range(len(batch)):
        assert loaded.pseudonym_hex(row) == bytes(batch.pseudonyms[row]).hex()


def test_clks_layout_of_a_known_batch() -> None:
    batch = EncodedBatch(
        schema_hash="ab",
        policy_id="p",
        policy_version="1",
        epoch=3,
        fields=(FieldLayout("sex", "token", 2),),
        attribute_names=("area",),
        pseudonyms=np.arange(16, dtype=np.uint8).reshape(1, 16),
        present=np.array([[True]]),
        values={"sex": np.array([[0xAA, 0x55]], dtype=np.uint8)},
        attributes=[[None]],
    )
    data = dump_clks(batch)
    magic, version, hlen = struct.unpack_from(">6sHI", data)
    assert (magic, version) == (b"PLCLKS", 1)
    header = json.loads(data[12 : 12 + hlen])
    assert header["record_count"] == 1
    assert header["fields"] == [{"name": "sex", "encoding": "token", "bytes": 2}]
    record = data[12 + hlen : 12 + hlen + 19]
    assert record == bytes(range(16)) + b"\x01\xaa\x55"
    (alen,) = struct.unpack_from(">I", data, 12 + hlen + 19)
    assert data[12 + hlen + 19 + 4 :] == b"[[null]]"
    assert alen == 8
    assert load_clks(data).attribute_column("area") == [None]


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    return dump_clks(draw(batches(max_records=3)))


@settings(max_examples=120, deadline=None)
@given(data=payloads(), cut=st.integers(min_value=0))
def test_every_truncation_of_a_payload_is_an_input_error(data: bytes, cut: int) -> None:
    cut %= len(data)
    with pytest.raises(InputError) as caught:
        load_clks(data[:cut])
    assert "not a valid .clks" in caught.value.message
    assert caught.value.fix


@settings(max_examples=50, deadline=None)
@given(data=payloads(), extra=st.binary(min_size=1, max_size=20))
def test_extra_bytes_after_a_payload_are_an_input_error(data: bytes, extra: bytes) -> None:
    with pytest.raises(InputError, match="extra bytes"):
        load_clks(data + extra)


@settings(max_examples=50, deadline=None)
@given(data=payloads(), magic=st.binary(min_size=6, max_size=6))
def test_wrong_magic_is_an_input_error(data: bytes, magic: bytes) -> None:
    if magic == MAGIC:
        magic = b"PLCLKT"
    with pytest.raises(InputError, match="magic"):
        load_clks(magic + data[6:])


@settings(max_examples=50, deadline=None)
@given(data=payloads(), version=st.integers(0, 2**16 - 1))
def test_unsupported_version_is_an_input_error(data: bytes, version: int) -> None:
    if version == FORMAT_VERSION:
        version = FORMAT_VERSION + 1
    with pytest.raises(InputError, match=f"version {version} is not supported"):
        load_clks(data[:6] + struct.pack(">H", version) + data[8:])


@settings(max_examples=200, deadline=None)
@given(data=payloads(), st_data=st.data())
def test_byte_changes_in_prefix_or_header_never_raise_anything_but_input_error(
    data: bytes, st_data: st.DataObject
) -> None:
    (hlen,) = struct.unpack_from(">I", data, 8)
    end = 12 + hlen
    tampered = bytearray(data)
    for _ in range(st_data.draw(st.integers(1, 3), label="changes")):
        index = st_data.draw(st.integers(0, end - 1), label="index")
        tampered[index] = st_data.draw(st.integers(0, 255), label="byte")
    try:
        load_clks(bytes(tampered))
    except InputError:
        return  # refused cleanly; any other exception fails the test


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("record_count", "three"),
        ("record_count", [1]),
        ("record_count", None),
        ("record_count", -1),
        ("epoch", "zero"),
        ("epoch", {"a": 1}),
        ("fields", "given_name"),
        ("fields", [{"name": "x", "encoding": "bloom", "bytes": "many"}]),
        ("fields", [{"name": "x", "encoding": "bloom", "bytes": 0}]),
        ("fields", [{"name": "x", "encoding": "bloom"}]),
        ("fields", [["x", "bloom", 2]]),
        ("attributes", 3),
        ("attributes", None),
    ],
)
def test_a_header_with_a_malformed_value_is_an_input_error(key: str, value: Any) -> None:
    batch = EncodedBatch(
        schema_hash="ab",
        policy_id="p",
        policy_version="1",
        epoch=0,
        fields=(),
        attribute_names=(),
        pseudonyms=np.zeros((0, 16), dtype=np.uint8),
        present=np.zeros((0, 0), dtype=bool),
    )
    header = batch.header()
    header[key] = value
    head = canonical_json(header)
    table = b"[]"
    data = struct.pack(">6sHI", MAGIC, 1, len(head)) + head + struct.pack(">I", 2) + table
    with pytest.raises(InputError):
        load_clks(data)


@pytest.mark.parametrize(
    "header_text",
    [
        b"[" * 100_000,
        b'{"schema_hash":"a","policy_id":"p","policy_version":"1","epoch":0,'
        b'"record_count":1.5,"fields":[]}',
        b'{"schema_hash":"a","policy_id":"p","policy_version":"1","epoch":true,'
        b'"record_count":0,"fields":[]}',
        b'{"schema_hash":"a","policy_id":"p","policy_version":"1","epoch":0,'
        b'"record_count":0,"fields":[{"name":"x","encoding":"bloom","bytes":Infinity}]}',
        b'{"schema_hash":"a","policy_id":"p","policy_version":"1","epoch":0,'
        b'"record_count":NaN,"fields":[]}',
        b"\xff\xfe{}",
    ],
    ids=[
        "deeply-nested",
        "fractional-count",
        "boolean-epoch",
        "infinite-bytes",
        "nan-count",
        "not-utf8",
    ],
)
def test_a_hostile_header_is_an_input_error(header_text: bytes) -> None:
    data = struct.pack(">6sHI", MAGIC, 1, len(header_text)) + header_text + struct.pack(">I", 2)
    with pytest.raises(InputError):
        load_clks(data + b"[]")


def test_a_deeply_nested_attribute_table_is_an_input_error() -> None:
    batch = EncodedBatch(
        schema_hash="ab",
        policy_id="p",
        policy_version="1",
        epoch=0,
        fields=(),
        attribute_names=(),
        pseudonyms=np.zeros((0, 16), dtype=np.uint8),
        present=np.zeros((0, 0), dtype=bool),
    )
    data = dump_clks(batch)
    table = b"[" * 100_000
    with pytest.raises(InputError, match="attribute table"):
        load_clks(data[:-6] + struct.pack(">I", len(table)) + table)


def test_a_presence_flag_other_than_0_or_1_is_an_input_error() -> None:
    batch = EncodedBatch(
        schema_hash="ab",
        policy_id="p",
        policy_version="1",
        epoch=0,
        fields=(FieldLayout("sex", "token", 1),),
        attribute_names=(),
        pseudonyms=np.zeros((1, 16), dtype=np.uint8),
        present=np.ones((1, 1), dtype=bool),
        values={"sex": np.zeros((1, 1), dtype=np.uint8)},
        attributes=[[]],
    )
    data = bytearray(dump_clks(batch))
    (hlen,) = struct.unpack_from(">I", data, 8)
    data[12 + hlen + 16] = 2
    with pytest.raises(InputError, match="presence flag"):
        load_clks(bytes(data))


@pytest.mark.parametrize(
    "table",
    [b"{}", b"[[1]]", b"[]", b"[[], []]", b"not json", b'[["a", "b"]]'],
)
def test_a_malformed_attribute_table_is_an_input_error(table: bytes) -> None:
    batch = EncodedBatch(
        schema_hash="ab",
        policy_id="p",
        policy_version="1",
        epoch=0,
        fields=(),
        attribute_names=("area",),
        pseudonyms=np.zeros((1, 16), dtype=np.uint8),
        present=np.zeros((1, 0), dtype=bool),
        attributes=[["SB1 2"]],
    )
    data = dump_clks(batch)
    (hlen,) = struct.unpack_from(">I", data, 8)
    body_end = 12 + hlen + 16
    tampered = data[:body_end] + struct.pack(">I", len(table)) + table
    with pytest.raises(InputError, match="attribute"):
        load_clks(tampered)


# --- policy model --------------------------------------------------------------------------------


def test_the_example_policy_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.policy_id == "seabrook-task-force"
    assert policy.status == "active"
    assert policy.effective_from == dt.date(2026, 1, 1)
    assert policy.expires_on == dt.date(2027, 12, 31)
    assert {p.role for p in policy.parties} == {"provider", "linkage_service", "recipient"}
    assert policy.party("police").organisation == "Seabrook Police"
    assert (policy.disclosure.min_cell, policy.disclosure.rounding) == (8, 5)
    assert len(policy.policy_hash) == 64
    with pytest.raises(PolicyError, match="no party 'analyst'"):
        policy.party("analyst")


def test_the_example_pins_exactly_the_default_schema() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.linkage_schema == default_schema().sha256
    check_schema(policy, default_schema())


def test_policy_hash_ignores_approvals() -> None:
    document = example_document()
    base = policy_hash(document)
    document["approvals"] = [{"dpo": "dpo@police.seabrook.example", "signature": "00" * 64}]
    assert policy_hash(document) == base
    del document["approvals"]
    assert policy_hash(document) == base


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from([k for k in TOP_LEVEL_KEYS if k != "approvals"]),
    new_value=st.text(max_size=10) | st.integers(-(2**53) + 1, 2**53 - 1) | st.none(),
)
def test_policy_hash_changes_with_any_other_key(key: str, new_value: Any) -> None:
    document = example_document()
    base = policy_hash(document)
    if document[key] == new_value:
        new_value = [new_value]
    document[key] = new_value
    assert policy_hash(document) != base


def test_policy_hash_ignores_yaml_formatting() -> None:
    document = example_document()
    reformatted = yaml.safe_load(yaml.safe_dump(document, sort_keys=True, default_flow_style=True))
    assert policy_hash(reformatted) == policy_hash(document)


def test_missing_and_unknown_top_level_keys_are_all_reported_in_one_error() -> None:
    document = example_document()
    for key in ("dpia", "retention", "tests"):
        del document[key]
    document["sharing_notes"] = "x"
    document["owner"] = "y"
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, where="p.yaml")
    message = caught.value.message
    assert message.startswith("p.yaml: 5 problems:")
    for key in ("dpia", "retention", "tests"):
        assert f"[missing-key] missing key {key!r}" in message
    for key in ("sharing_notes", "owner"):
        assert f"[unknown-key] {key}: unknown key {key!r}" in message
    assert "placelink policy lint" in caught.value.fix


@pytest.mark.parametrize(
    "control",
    [
        {"min_cell": 7, "rounding": 5},
        {"min_cell": 8, "rounding": 4},
        {"min_cell": 1, "rounding": 1},
        {"min_cell": 0},
        {"rounding": 2},
    ],
)
def test_disclosure_control_looser_than_the_house_default_is_refused(
    control: dict[str, int],
) -> None:
    with pytest.raises(PolicyError, match="below the house floor") as caught:
        example_policy(disclosure_control=control)
    assert "[disclosure-floor]" in caught.value.message
    assert "min_cell >= 8" in caught.value.message or "rounding >= 5" in caught.value.message


@pytest.mark.parametrize(
    ("control", "expected"),
    [({"min_cell": 10, "rounding": 10}, (10, 10)), (None, (8, 5)), ({}, (8, 5))],
)
def test_disclosure_control_may_be_tightened(
    control: dict[str, int] | None, expected: tuple[int, int]
) -> None:
    policy = example_policy(disclosure_control=control)
    assert (policy.disclosure.min_cell, policy.disclosure.rounding) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"effective_from": "first of May"}, "effective_from: is not a date"),
        ({"expires_on": "2027-13-01"}, "expires_on: is not a date"),
        ({"parties": [{"id": "police"}]}, "parties[0]: missing key 'role'"),
        ({"parties": None}, "parties: must list at least one entry"),
        ({"data_items": [{"field": "given_name", "transform": "send"}]}, "data_items[0].transform"),
        ({"data_items": ["given_name"]}, "data_items[0]: must be a mapping"),
        ({"status": "Active"}, "status: is not one of the allowed values"),
        ({"linkage_schema": None}, "linkage_schema: is not a SHA-256"),
        ({"expires_on": dt.date(2025, 12, 31)}, "expires_on: is before effective_from"),
    ],
)
def test_malformed_policy_parts_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        example_policy(**changes)
    assert message in caught.value.message
    assert caught.value.fix


def test_a_policy_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(path)
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.yaml")


def test_iso_string_dates_load_as_dates() -> None:
    policy = example_policy(effective_from="2026-02-01", expires_on="2026-03-01")
    assert policy.effective_from == dt.date(2026, 2, 1)
    assert policy.expires_on == dt.date(2026, 3, 1)


# --- enforcement decisions -----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["suspended", "draft", "retired"])
def test_a_policy_that_is_not_active_is_refused(status: str) -> None:
    with pytest.raises(PolicyError, match=f"status {status!r}"):
        check_in_force(example_policy(status=status), today=IN_FORCE)


@pytest.mark.parametrize(
    ("today", "in_force"),
    [
        (dt.date(2025, 12, 31), False),
        (dt.date(2026, 1, 1), True),
        (dt.date(2027, 12, 31), True),
        (dt.date(2028, 1, 1), False),
    ],
)
def test_a_policy_is_in_force_only_between_its_dates(today: dt.date, in_force: bool) -> None:
    policy = example_policy()
    if in_force:
        check_in_force(policy, today=today)
    else:
        with pytest.raises(PolicyError, match="not in force") as caught:
            check_in_force(policy, today=today)
        assert "renew" in caught.value.fix


def test_a_schema_other_than_the_pinned_one_is_refused() -> None:
    document = yaml.safe_load(default_schema_text())
    document["fields"]["given_name"]["bits"] = 512
    other = parse_schema(document)
    with pytest.raises(PolicyError, match="pins another linkage schema"):
        check_schema(example_policy(), other)


def _items(*items: dict[str, Any]) -> list[dict[str, Any]]:
    """Data items with ids and categories filled in (as the format requires)."""
    return [{"id": item["field"], "category": "personal", **item} for item in items]


def test_encoded_fields_name_only_the_policy_encode_items() -> None:
    schema = default_schema()
    policy = example_policy(
        data_items=_items(
            {"field": "given_name", "transform": "encode"},
            {
                "field": "postcode",
                "transform": "generalise",
                "attribute": "area",
                "generalisation": "postcode_sector",
            },
            {"field": "address", "transform": "drop"},
            {"field": "nhs_number", "transform": "encode"},
            {"field": "not_in_schema", "transform": "encode"},
        )
    )
    names = [spec.name for spec in encoded_fields(policy, schema)]
    assert names == ["given_name", "nhs_number"]
    assert all(isinstance(spec, FieldSpec) for spec in encoded_fields(policy, schema))


def test_encoded_fields_of_the_example_are_all_schema_fields() -> None:
    schema = default_schema()
    assert encoded_fields(example_policy(), schema) == schema.fields


def test_a_policy_with_no_encode_items_encodes_nothing() -> None:
    policy = example_policy(data_items=[])
    assert encoded_fields(policy, default_schema()) == ()
    assert released_attributes(policy) == ()


def test_released_attributes_of_the_example() -> None:
    assert released_attributes(example_policy()) == (
        ReleasedAttribute("area", "postcode", "postcode_sector"),
        ReleasedAttribute("event_month", "event_date", "month"),
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"field": "postcode", "transform": "generalise", "attribute": "area"},
         "generalisation: is missing or unknown"),
        ({"field": "postcode", "transform": "generalise", "generalisation": "postcode_sector"},
         "attribute: is not a valid id"),
        ({"field": "postcode", "transform": "generalise", "generalisation": "month",
          "attribute": "area"}, "month cannot apply to this field"),
        ({"field": "postcode", "transform": "encode", "generalisation": "postcode_sector"},
         "only a generalised item has a generalisation"),
    ],
)  # fmt: skip
def test_a_generalise_item_must_name_a_fitting_generalisation_and_attribute(
    item: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match="invalid-value") as caught:
        example_policy(data_items=_items(item))
    assert message in caught.value.message


def _policy_with_keys() -> Policy:
    document = example_document()
    for party in document["parties"]:
        if party["id"] == "police":
            party["node_key"] = PROVIDER_KEY
        if party["id"] == "linkage":
            party["node_key"] = LINKAGE_KEY
    return parse_policy(document)


def test_provider_for_key_finds_the_provider() -> None:
    assert provider_for_key(_policy_with_keys(), PROVIDER_KEY).id == "police"


@pytest.mark.parametrize("key", [LINKAGE_KEY, "ed25519:" + "ef" * 32, "", PROVIDER_KEY.upper()])
def test_provider_for_key_refuses_a_non_provider_or_unknown_key(key: str) -> None:
    with pytest.raises(AccessError) as caught:
        provider_for_key(_policy_with_keys(), key)
    assert "enrol" in caught.value.fix
    if key:
        assert key not in str(caught.value)


def test_parties_without_a_node_key_never_match() -> None:
    document = example_document()
    for party in document["parties"]:
        party["node_key"] = None
    policy = parse_policy(document)
    assert all(p.node_key is None for p in policy.parties)
    assert policy.party_by_key("") is None
    with pytest.raises(AccessError):
        provider_for_key(policy, "")


def test_check_schema_passes_for_the_pinned_schema_only() -> None:
    schema = default_schema()
    pinned = example_policy(linkage_schema=schema.sha256)
    check_schema(pinned, schema)
    fake = LinkageSchema(schema.name, schema.version, schema.fields, "0" * 64)
    with pytest.raises(PolicyError):
        check_schema(pinned, fake)
