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
from gateway.schema import default_schema, hardened_schema
from keys import KeyPurpose, LinkageSecret, derive_key
from policies.clks import dump_clks, load_clks
from policies.linkage_schema import LinkageSchema

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TEST_SECRET_HEX = bytes(range(32)).hex()


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return document


DERIVE = _load("derive-v1.json")
ENCODING = _load("encoding-v1.json")  # the shipped default schema (version 1)
ENCODING_V2 = _load("encoding-v2.json")  # the shipped hardened schema (version 2, salted names)
ENCODINGS = {"v1": ENCODING, "v2": ENCODING_V2}


def _schema(version: str) -> LinkageSchema:
    return hardened_schema() if version == "v2" else default_schema()


def test_vectors_are_marked_as_test_only() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    assert "TEST secret" in readme
    assert "Never use" in readme
    for document in (DERIVE, ENCODING, ENCODING_V2):
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


def test_default_schema_hash_matches_the_vector() -> None:
    assert default_schema().sha256 == ENCODING["schema_sha256"]
    assert hardened_schema().sha256 == ENCODING_V2["schema_sha256"]


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


def test_field_layout_matches_the_vector() -> None:
    batch, _ = _encode_vector_records()
    layout = [{"name": f.name, "encoding": f.encoding, "bytes": f.nbytes} for f in batch.fields]
    assert layout == ENCODING["fields"]
    assert batch.schema_hash == ENCODING["schema_sha256"]


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


def test_vector_encodings_survive_the_clks_round_trip() -> None:
    batch, names = _encode_vector_records()
    loaded = load_clks(dump_clks(batch))
    for row, expected in enumerate(ENCODING["records"]):
        for name in names:
            assert bytes(loaded.values[name][row]).hex() == expected["encoded_hex"][name]
