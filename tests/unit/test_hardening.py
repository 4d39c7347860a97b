"""Unit and property tests for the Bloom-filter hardenings (gateway/hardening.py) and their
declaration in the linkage schema."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bloom import BloomEncoder
from gateway.hardening import salted, salts_for
from gateway.schema import default_schema, hardened_schema
from keys.errors import ConfigError
from policies.linkage_schema import FieldSpec, parse_schema

KEY = bytes(range(32))
NAME = FieldSpec("given_name", "given_name", "bloom", ngram=2, bits=256, hashes=20)
SALTED = FieldSpec("given_name", "given_name", "bloom", bits=256, hashes=20, salt="birth_date")
NAMES = st.text(alphabet="abcdefghij", min_size=1, max_size=10)


def _schema(**field: Any) -> dict[str, Any]:
    base = {"normalise": "given_name", "encoding": "bloom", "bits": 256, "hashes": 20}
    return {"name": "t", "schema_version": 2, "fields": {"given_name": {**base, **field}}}


def test_the_hardened_schema_is_the_default_with_names_salted_by_the_birth_date() -> None:
    schema, default = hardened_schema(), default_schema()
    assert (schema.version, default.version) == (2, 1)
    assert {s.name for s in schema.fields if s.salt} == {"given_name", "family_name"}
    assert all(s.salt in (None, "birth_date") and s.blip == 0.0 for s in schema.fields)
    unsalted = [FieldSpec(**{**vars(s), "salt": None}) for s in schema.fields]
    assert tuple(unsalted) == default.fields
    assert not any(s.salt or s.blip for s in default.fields)


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ({"salt": "postcode"}, "unknown salt"),
        ({"blip": 0.6}, "blip outside"),
        ({"blip": -0.1}, "blip outside"),
        ({"blip": "much"}, "non-numeric"),
        ({"encoding": "token", "salt": "birth_year"}, "token field"),
    ],
)
def test_hardening_errors_name_the_field_and_the_fix(field: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_schema(_schema(**field), where="schemas/t.yaml")
    assert named in caught.value.message
    assert "given_name" in caught.value.message and caught.value.fix


def test_blip_epsilon_is_stated_per_bit() -> None:
    spec = parse_schema(_schema(blip=0.05)).field("given_name")
    assert spec.blip_epsilon == pytest.approx(math.log(0.95 / 0.05))
    assert NAME.blip_epsilon is None


def test_salts_are_the_birth_year_or_date_and_empty_when_unknown() -> None:
    values: dict[str, list[str | dt.date | None]] = {"date_of_birth": [dt.date(1980, 2, 29), None]}
    assert salts_for(SALTED, values, 2) == ["1980-02-29", ""]
    year = FieldSpec("f", "given_name", "bloom", bits=64, hashes=2, salt="birth_year")
    assert salts_for(year, values, 2) == ["1980", ""]
    assert salts_for(NAME, values, 2) is None
    assert salts_for(SALTED, {}, 2) == ["", ""]
    assert salted("_a", "1980") == "_a\x1f1980"


@settings(max_examples=60, deadline=None)
@given(name=NAMES, first=st.dates(), second=st.dates())
def test_a_salted_name_agrees_only_under_the_same_salt(
    name: str, first: dt.date, second: dt.date
) -> None:
    encoder = BloomEncoder(SALTED, KEY)
    salts = [first.isoformat(), second.isoformat(), first.isoformat()]
    a, b, again = encoder.encode_many([name, name, name], salts)
    assert np.array_equal(a, again)
    assert np.array_equal(a, b) == (first == second)
    plain = BloomEncoder(NAME, KEY).encode_many([name])[0]
    assert not np.array_equal(a, plain)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.none() | NAMES, min_size=1, max_size=8), salt=st.sampled_from(["", "x"]))
def test_salted_encoding_equals_tokens_salted_one_by_one(
    names: list[str | None], salt: str
) -> None:
    encoder = BloomEncoder(SALTED, KEY)
    got = encoder.encode_many(names, [salt] * len(names))
    for row, name in enumerate(names):
        bits = np.zeros(256, dtype=bool)
        if name is not None:
            for gram in [f"_{name}_"[i : i + 2] for i in range(len(name) + 1)]:
                bits[list(encoder.positions(salted(gram, salt)))] = True
        assert bytes(got[row]) == bytes(np.packbits(bits, bitorder="big"))


def test_blip_is_keyed_per_record_deterministic_near_its_rate_and_spares_missing_rows() -> None:
    spec = FieldSpec("given_name", "given_name", "bloom", bits=256, hashes=20, blip=0.05)
    encoder = BloomEncoder(spec, KEY)
    count = 2000
    filters = encoder.encode_many(["anna"] * count)
    present = np.ones(count, dtype=bool)
    present[:10] = False
    ids = [f"r{i}" for i in range(count)]
    noisy = encoder.blip(filters, present, ids)
    assert np.array_equal(noisy, encoder.blip(filters, present, ids))
    assert np.array_equal(noisy[:10], filters[:10])
    flipped = np.unpackbits(noisy[10:] ^ filters[10:], axis=1).mean()
    assert 0.045 < flipped < 0.055
    other = BloomEncoder(spec, bytes(range(1, 33))).blip(filters, present, ids)
    assert not np.array_equal(noisy, other)
    assert len({bytes(row) for row in noisy[10:]}) > count * 0.99  # no two records share noise
    unhardened = BloomEncoder(NAME, KEY)
    assert np.array_equal(unhardened.blip(filters, present, ids), filters)


def test_blip_known_answer() -> None:
    """Pins the BLIP noise construction (gateway/hardening.py, docs/formats.md): a silent change
    would make re-encoded records carry new noise, which averaging across publications exploits."""
    spec = FieldSpec("given_name", "given_name", "bloom", bits=64, hashes=4, blip=0.1)
    encoder = BloomEncoder(spec, bytes(range(32)))
    filters = encoder.encode_many(["anna", "bob"])
    assert [bytes(r).hex() for r in filters] == ["028062860080cb64", "c908840612001062"]
    noisy = encoder.blip(filters, np.array([True, True]), ["kat-1", "kat-2"])
    assert [bytes(r).hex() for r in noisy] == ["0280668600c4c3a6", "c90880461a001162"]
