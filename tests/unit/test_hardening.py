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
from gateway.hardening import (
    balance,
    filter_spec,
    permutation,
    salted,
    salts_for,
    transform,
    xor_fold,
)
from gateway.schema import default_schema, default_v1_schema, hardened_schema
from keys.errors import ConfigError
from policies.linkage_schema import FieldSpec, parse_schema

KEY = bytes(range(32))
NAME = FieldSpec("given_name", "given_name", "bloom", ngram=2, bits=256, hashes=20)
SALTED = FieldSpec("given_name", "given_name", "bloom", bits=256, hashes=20, salt="birth_date")
NAMES = st.text(alphabet="abcdefghij", min_size=1, max_size=10)


def _schema(**field: Any) -> dict[str, Any]:
    base = {"normalise": "given_name", "encoding": "bloom", "bits": 256, "hashes": 20}
    return {"name": "t", "schema_version": 2, "fields": {"given_name": {**base, **field}}}


def test_the_hardened_schema_is_version_1_with_names_salted_by_the_birth_date() -> None:
    schema, default = hardened_schema(), default_v1_schema()
    assert (schema.version, default.version, default_schema().version) == (2, 1, 3)
    assert {s.name for s in schema.fields if s.salt} == {"given_name", "family_name"}
    assert all(s.salt in (None, "birth_date") and s.blip == 0.0 for s in schema.fields)
    unsalted = [FieldSpec(**{**vars(s), "salt": None}) for s in schema.fields]
    assert tuple(unsalted) == default.fields
    assert not any(s.salt or s.blip for s in default.fields)


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ({"salt": "house"}, "unknown salt"),
        ({"salt": ["birth_year"]}, "cannot check"),
        ({"salt": []}, "no salt or one salt twice"),
        ({"salt": ["postcode", "postcode"]}, "no salt or one salt twice"),
        ({"salt": ["postcode"], "blip": 0.1}, "list of salts with blip"),
        ({"salt": ["postcode"]}, "no unsalted Bloom field"),
        ({"salt": ["postcode_other_name"]}, "given_name and family_name both"),
        ({"salt": "postcode_other_name"}, "given_name and family_name both"),
        ({"blip": 0.6}, "blip outside"),
        ({"blip": -0.1}, "blip outside"),
        ({"blip": "much"}, "non-numeric"),
        ({"encoding": "token", "salt": "birth_year"}, "token field"),
        ({"encoding": "token", "balance": True}, "token field"),
        ({"xor_fold": "yes"}, "non-boolean xor_fold"),
        ({"balance": 1}, "non-boolean balance"),
        ({"xor_fold": True, "bits": 192}, "multiple of 128"),
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


FILTERS = st.integers(min_value=0, max_value=12).flatmap(
    lambda rows: st.binary(min_size=32 * rows, max_size=32 * rows).map(
        lambda raw: np.frombuffer(raw, dtype=np.uint8).reshape(-1, 32).copy()
    )
)


def test_stored_widths_follow_folding_and_balancing() -> None:
    widths = {}
    for fold in (False, True):
        for bal in (False, True):
            spec = parse_schema(_schema(xor_fold=fold, balance=bal)).field("given_name")
            widths[fold, bal] = (spec.stored_bits, spec.nbytes, filter_spec(spec).nbytes)
    assert widths == {
        (False, False): (256, 32, 32),
        (True, False): (128, 16, 32),
        (False, True): (512, 64, 32),
        (True, True): (256, 32, 32),
    }


@settings(max_examples=60, deadline=None)
@given(filters=FILTERS)
def test_xor_fold_halves_the_filter_as_the_xor_of_its_halves(filters: np.ndarray) -> None:
    folded = xor_fold(filters)
    assert folded.shape == (len(filters), 16)
    for row, original in zip(folded, filters, strict=True):
        assert bytes(row) == bytes(a ^ b for a, b in zip(original[:16], original[16:], strict=True))


@settings(max_examples=60, deadline=None)
@given(filters=FILTERS, missing=st.integers(min_value=0, max_value=12))
def test_balance_doubles_sets_exactly_half_and_keeps_the_hamming_distance(
    filters: np.ndarray, missing: int
) -> None:
    present = np.arange(len(filters)) >= missing
    out = balance(filters, present, KEY)
    assert out.shape == (len(filters), 64)
    weights = np.unpackbits(out, axis=1).sum(axis=1)
    assert np.all(weights[present] == 256) and np.all(weights[~present] == 0)
    assert np.array_equal(out, balance(filters, present, KEY))  # deterministic under one key
    bits, doubled = np.unpackbits(filters, axis=1), np.unpackbits(out, axis=1)
    for i in np.flatnonzero(present).tolist():
        for j in np.flatnonzero(present).tolist():
            plain = np.count_nonzero(bits[i] != bits[j])
            assert np.count_nonzero(doubled[i] != doubled[j]) == 2 * plain


def test_the_balancing_permutation_is_keyed_and_a_permutation() -> None:
    order = permutation(KEY, 512)
    assert sorted(order.tolist()) == list(range(512))
    assert not np.array_equal(order, permutation(bytes(range(1, 33)), 512))
    assert np.array_equal(order, permutation(KEY, 512))
    filters = BloomEncoder(NAME, KEY).encode_many(["anna", "bob"])
    present = np.ones(2, dtype=bool)
    assert not np.array_equal(
        balance(filters, present, KEY), balance(filters, present, bytes(range(1, 33)))
    )


@settings(max_examples=30, deadline=None)
@given(names=st.lists(st.none() | NAMES, min_size=1, max_size=6))
def test_transform_applies_blip_then_folding_then_balancing(names: list[str | None]) -> None:
    spec = parse_schema(_schema(blip=0.05, xor_fold=True, balance=True)).field("given_name")
    encoder = BloomEncoder(filter_spec(spec), KEY)
    filters = encoder.encode_many(names)
    present = np.array([n is not None for n in names])
    ids = [f"r{i}" for i in range(len(names))]
    out = transform(filters, present, spec, KEY, ids)
    assert out.shape == (len(names), spec.nbytes)
    expected = balance(xor_fold(encoder.blip(filters, present, ids)), present, KEY)
    assert np.array_equal(out, expected)
    plain = parse_schema(_schema()).field("given_name")
    assert np.array_equal(transform(filters, present, plain, KEY, ids), filters)


def test_folding_and_balancing_known_answer() -> None:
    """Pins the folding and the keyed balancing permutation (gateway/hardening.py): a silent
    change would stop balanced filters linking with those encoded before it."""
    spec = FieldSpec("given_name", "given_name", "bloom", bits=128, hashes=4)
    filters = BloomEncoder(spec, bytes(range(32))).encode_many(["anna"])
    folded = xor_fold(filters)
    balanced = balance(folded, np.array([True]), bytes(range(32)))
    assert [bytes(filters[0]).hex(), bytes(folded[0]).hex(), bytes(balanced[0]).hex()] == [
        "00004282000043400280600400808824",
        "028022860080cb64",
        "e7e0770a0ebc5c31fc540a0ea5ac76cd",
    ]
