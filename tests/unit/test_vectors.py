"""Known-answer vectors: a silent change of derivation or encoding must fail loudly.

The vectors in tests/vectors/ hold a fixed TEST secret (see the README there) and the exact bytes
the code produced when they were made. Any change of key derivation, normalisation, tokenisation,
hash positions, bit order or token construction changes these bytes, and would stop every
agency's new encodings from linking with its old ones.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.encode import encode_records
from gateway.mapping import canonical_mapping
from gateway.pipeline import context_without_policy
from gateway.pseudonyms import PseudonymMap
from gateway.records import normalise_rows
from gateway.schema import default_schema, default_v1_schema, hardened_schema
from keys import KeyPurpose, LinkageSecret, derive_key
from policies.clks import dump_clks, load_clks
from policies.linkage_schema import LinkageSchema

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TEST_SECRET_HEX = bytes(range(32)).hex()


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return document


DERIVE = _load("derive-v1.json")
ENCODING = _load("encoding-v1.json")  # schema version 1, the default until version 3
ENCODING_V2 = _load("encoding-v2.json")  # the shipped hardened schema (version 2, salted names)
ENCODING_V3 = _load("encoding-v3.json")  # the default schema (version 3, names as salted copies)
ENCODINGS = {"v1": ENCODING, "v2": ENCODING_V2, "v3": ENCODING_V3}


def _schema(version: str) -> LinkageSchema:
    return {"v1": default_v1_schema, "v2": hardened_schema, "v3": default_schema}[version]()


def test_vectors_are_marked_as_test_only() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    assert "TEST secret" in readme
    assert "Never use" in readme
    for document in (DERIVE, ENCODING, ENCODING_V2, ENCODING_V3):
        assert "TEST" in document["_note"]
        assert "Never use" in document["_note"]
        assert document["test_secret_hex"] == TEST_SECRET_HEX


@pytest.mark.parametrize(
    "vector",
    DERIVE["vectors"],
    ids=[f"{v['purpose']}-{v['policy_id']}-{v['epoch']}-{v['field']}" for v in DERIVE["vectors"]],
)
def test_derived_keys_match_the_vectors(vector: dict[str, Any]) -> None:
    secret = LinkageSecret(bytes.fromhex(DERIVE["test_secret_hex"]))
    key = derive_key(
        secret,
        purpose=KeyPurpose(vector["purpose"]),
        policy_id=vector["policy_id"],
        epoch=vector["epoch"],
        field=vector["field"],
    )
    assert key.hex() == vector["key_hex"]


def test_derive_vectors_cover_both_purposes_and_distinct_keys() -> None:
    vectors = DERIVE["vectors"]
    assert {v["purpose"] for v in vectors} == {p.value for p in KeyPurpose}
    assert len({v["key_hex"] for v in vectors}) == len(vectors)


def test_shipped_schema_hashes_match_the_vectors() -> None:
    assert default_v1_schema().sha256 == ENCODING["schema_sha256"]
    assert hardened_schema().sha256 == ENCODING_V2["schema_sha256"]
    assert default_schema().sha256 == ENCODING_V3["schema_sha256"]


def test_the_default_schemas_copies_of_a_name_are_absent_where_their_salt_is() -> None:
    """Version 3: a copy whose salt (date of birth; postcode and other name) is missing is
    all-zero, never salted with the empty salt."""
    other = {"given_name": "family_name", "family_name": "given_name"}
    for record in ENCODING_V3["records"]:
        given = record["input"]
        for name in ("given_name", "family_name"):
            by_date, by_postcode = (record["encoded_hex"][name][i : i + 64] for i in (0, 64))
            has_name = bool(given[name].strip())
            at_home = bool(given["postcode"]) and bool(given[other[name]].strip())
            assert (set(by_date) != {"0"}) == (has_name and bool(given["date_of_birth"]))
            assert (set(by_postcode) != {"0"}) == (has_name and at_home)


def _encode_vector_records(version: str = "v1") -> tuple[Any, list[str]]:
    vectors = ENCODINGS[version]
    schema = _schema(version)
    context = vectors["context"]
    ctx = context_without_policy(schema, policy_id=context["policy_id"], epoch=context["epoch"])
    rows = [dict(record["input"]) for record in vectors["records"]]
    header = list(rows[0])
    records = normalise_rows(
        iter(rows),
        canonical_mapping(context["policy_id"], header),
        today=dt.date.fromisoformat(vectors["today"]),
        strict=True,
    )
    batch = encode_records(
        records,
        secret=LinkageSecret(bytes.fromhex(vectors["test_secret_hex"])),
        context=ctx,
        pseudonyms=PseudonymMap(),
    )
    assert batch.policy_version == context["policy_version"]
    return batch, [spec.name for spec in ctx.fields]


@pytest.mark.parametrize("version", sorted(ENCODINGS))
def test_field_layout_matches_the_vector(version: str) -> None:
    batch, _ = _encode_vector_records(version)
    layout = [{"name": f.name, "encoding": f.encoding, "bytes": f.nbytes} for f in batch.fields]
    assert layout == ENCODINGS[version]["fields"]
    assert batch.schema_hash == ENCODINGS[version]["schema_sha256"]


@pytest.mark.parametrize("version", sorted(ENCODINGS))
@pytest.mark.parametrize("row", range(len(ENCODING["records"])))
def test_field_encodings_match_the_vectors_exactly(version: str, row: int) -> None:
    batch, names = _encode_vector_records(version)
    expected = ENCODINGS[version]["records"][row]
    got_present = {name: bool(batch.present[row, index]) for index, name in enumerate(names)}
    got_bytes = {name: bytes(batch.values[name][row]).hex() for name in names}
    assert got_present == expected["present"]
    for name in names:
        assert got_bytes[name] == expected["encoded_hex"][name], f"field {name} changed"


def test_vectors_include_empty_values_as_all_zero_rows() -> None:
    empty = [r for r in ENCODING["records"] if not any(r["present"].values())]
    assert empty, "the vectors must include a record with every field empty"
    for record in empty:
        assert all(set(value) == {"0"} for value in record["encoded_hex"].values())


@pytest.mark.parametrize("version", sorted(ENCODINGS))
def test_vector_encodings_survive_the_clks_round_trip(version: str) -> None:
    batch, names = _encode_vector_records(version)
    loaded = load_clks(dump_clks(batch))
    for row, expected in enumerate(ENCODINGS[version]["records"]):
        for name in names:
            assert bytes(loaded.values[name][row]).hex() == expected["encoded_hex"][name]
