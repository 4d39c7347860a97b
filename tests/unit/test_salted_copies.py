"""Names stored as salted copies (``salt: [birth_date, postcode_other_name]``, the default
schema, version 3): how the gateway encodes the copies, and how the linkage side compares and
blocks on them (docs/attacks.md, docs/formats.md)."""

from __future__ import annotations

import datetime as dt
import hmac
import threading

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import copy_kernels, salted_positions
from gateway.bloom import BloomEncoder
from gateway.codebook import CodedColumn
from gateway.encode import encode_records, salted_filters
from gateway.hardening import SALT_SEPARATOR, filter_spec, salt_values
from gateway.mapping import canonical_mapping
from gateway.pipeline import context_without_policy
from gateway.pseudonyms import PseudonymMap
from gateway.records import NormalisedRecords, normalise_rows
from gateway.schema import (
    default_schema,
    default_v1_schema,
    hardened_schema,
    schema_for,
    shipped_schema,
)
from gateway.tokenise import field_tokens
from keys import KeyPurpose, LinkageSecret, derive_key
from keys.errors import ConfigError, InputError
from linkage.blocking import candidate_pairs, field_pairs
from linkage.classify import DEFAULT_MODELS
from linkage.compare import (
    MISSING,
    SALT_AGREEMENT_DICE,
    comparison_levels,
    other_name_salted_similarity,
    similarities,
)
from linkage.corpus import EncodedCorpus, build_corpus
from linkage.engine import COPIES_BLOCKING, LocalEngine, model_fields, salted_fields
from policies.clks import EncodedBatch
from policies.linkage_schema import FieldSpec, LinkageSchema
from tests.conftest import require

SECRET = LinkageSecret(bytes(range(32)))
HEADER = ["record_id", "given_name", "family_name", "date_of_birth", "postcode"]
TODAY = dt.date(2027, 1, 1)


def _records(rows: list[list[str]]) -> NormalisedRecords:
    return normalise_rows(
        (dict(zip(HEADER, row, strict=True)) for row in rows),
        canonical_mapping("t", HEADER),
        today=TODAY,
    )


def _encode(rows: list[list[str]], schema: LinkageSchema | None = None) -> EncodedBatch:
    schema = schema or default_schema()
    records = _records(rows)
    context = context_without_policy(schema, policy_id="t", epoch=0)
    return encode_records(records, secret=SECRET, context=context, pseudonyms=PseudonymMap())


def test_the_default_declares_two_copies_per_name_and_keeps_the_older_versions() -> None:
    schema = default_schema()
    names = [spec for spec in schema.fields if spec.salts]
    assert [spec.name for spec in names] == ["given_name", "family_name"]
    salts = ("birth_date", "postcode_other_name")
    assert all(spec.salts == salts and spec.salt is None for spec in names)
    assert all(spec.nbytes == 2 * spec.copy_bytes == 64 for spec in names)
    assert schema.salt_fields() == {
        "given_name": ("date_of_birth", "postcode"),
        "family_name": ("date_of_birth", "postcode"),
    }
    assert schema.copy_partners() == {
        "given_name": ("", "family_name@postcode"),
        "family_name": ("", "given_name@postcode"),
    }
    assert salted_fields(schema) == ()  # the single-salt rules of version 2 stay off
    assert default_v1_schema().version == 1 and hardened_schema().version == 2


def test_a_policy_finds_the_shipped_schema_it_pins() -> None:
    for schema in (default_schema(), default_v1_schema(), hardened_schema()):
        assert shipped_schema(schema.sha256) == schema
        assert schema_for(None, pinned=schema.sha256) == schema
    assert schema_for(None) == default_schema()
    with pytest.raises(ConfigError) as caught:
        shipped_schema("0" * 64)
    assert "not shipped" in caught.value.message and caught.value.fix


def _key(field: str) -> bytes:
    return derive_key(SECRET, purpose=KeyPurpose.BLOOM, policy_id="t", epoch=0, field=field)


PEOPLE = st.lists(
    st.tuples(
        st.sampled_from(["anna", "bob", "", "zoë"]),
        st.sampled_from(["1980-02-29", "2001-12-31", ""]),
        st.sampled_from(["CT9 1AB", "CT9 2XY", ""]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None)
@given(people=PEOPLE)
def test_each_copy_is_the_name_salted_with_its_attribute_and_absent_without_it(
    people: list[tuple[str, str, str]],
) -> None:
    rows = [
        [str(i), name, "smith", born, postcode] for i, (name, born, postcode) in enumerate(people)
    ]
    batch, values = _encode(rows), _records(rows).values
    spec = default_schema().field("given_name")
    stored = batch.values["given_name"]
    column = [layout.name for layout in batch.fields].index("given_name")
    for copy, salt in enumerate(spec.salts):
        salts = salt_values(salt, values, len(people), "given_name")
        part = stored[:, copy * 32 : (copy + 1) * 32]
        for row, name in enumerate(values["given_name"]):
            if name is not None and salts[row] is not None:
                parts = tuple(str(salts[row]).split(SALT_SEPARATOR))
                alone = _by_definition(_key("given_name"), spec, salt, name, parts)
                assert part[row].tobytes() == alone
            else:
                assert not part[row].any()  # never salted with the empty salt
    expected = [bool(n) and bool(b or p) for n, b, p in people]
    assert batch.present[:, column].tolist() == expected


def _by_definition(
    field_key: bytes, spec: FieldSpec, kind: str, value: str, salt: tuple[str, ...]
) -> bytes:
    """A copy's filter of one value, one token and one AES block at a time, as the module
    docstring of gateway.salted_positions defines it."""
    keys = {
        name: hmac.digest(field_key, label + b"\0" + kind.encode(), "sha256")
        for name, label in (("salt", b"placelink salted copy v1: salt"),
                            ("token", b"placelink salted copy v1: token"),
                            ("aes", b"placelink salted copy v1: aes"))
    }  # fmt: skip
    hashed = filter_spec(spec)
    size = 1 if 256 % hashed.bits == 0 else 2 if 65536 % hashed.bits == 0 else 4
    salt_digest = bytes(16)
    for index, part in enumerate(salt):
        digest = hmac.digest(keys["salt"], bytes([index]) + part.encode(), "sha256")[:16]
        salt_digest = _xor(salt_digest, digest)
    bits = np.zeros(hashed.bits, dtype=bool)
    for token in set(field_tokens(hashed, value)):
        token_digest = hmac.digest(keys["token"], token.encode(), "sha256")[:16]
        base = _xor(salt_digest, token_digest)
        stream = b""
        for j in range(-(-size * hashed.hashes // 16)):
            aes = Cipher(algorithms.AES(keys["aes"]), modes.ECB()).encryptor()
            stream += aes.update(_xor(base, j.to_bytes(16, "big"))) + aes.finalize()
        for i in range(hashed.hashes):
            bits[int.from_bytes(stream[size * i : size * (i + 1)], "big") % hashed.bits] = True
    return np.packbits(bits, bitorder="big").tobytes()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _corpus(rows: list[list[str]]) -> EncodedCorpus:
    return build_corpus([("a", _encode(rows))], default_schema())


def test_a_name_is_compared_by_a_copy_whose_salt_agrees_and_missing_where_none_does() -> None:
    rows = [
        ["0", "anna", "smith", "1980-02-29", "CT9 1AB"],
        ["1", "anna", "smith", "1980-02-29", "CT9 2XY"],  # date agrees with 0
        ["2", "anna", "smith", "1975-01-01", "CT9 1AB"],  # postcode agrees with 0
        ["3", "anna", "smith", "1975-01-01", "CT9 2XY"],  # neither agrees with 0
        ["4", "bob", "jones", "1980-02-29", "CT9 9ZZ"],  # date agrees with 0, names differ
        ["5", "anna", "smith", "", "CT9 1AB"],  # no date: the postcode copy alone
    ]
    corpus = _corpus(rows)
    pairs = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [3, 5]], dtype=np.int64)
    fields = model_fields(corpus)
    levels = comparison_levels(corpus, pairs, fields, DEFAULT_MODELS)
    given = levels[:, fields.index("given_name")].tolist()
    worst = len(DEFAULT_MODELS["given_name"].m) - 1
    assert given == [0, 0, MISSING, worst, 0, MISSING]
    sims = similarities(corpus, pairs)["family_name"]
    assert sims[0] == sims[1] == 1.0 and np.isnan(sims[2]) and sims[3] < 0.5


def test_the_salts_own_field_left_out_lets_a_copy_count_where_its_partner_is_equal() -> None:
    batch = _encode(
        [
            ["0", "anna", "s", "1980-02-29", "CT9 1AB"],
            ["1", "anna", "s", "", "CT9 1AB"],
            ["2", "anna", "s", "", "CT9 2XY"],
        ]
    )
    keep = tuple(f for f in batch.fields if f.name != "postcode")
    index = [f.name for f in batch.fields].index("postcode")
    narrowed = EncodedBatch(
        batch.schema_hash, batch.policy_id, batch.policy_version, batch.epoch, keep, (),
        batch.pseudonyms, np.delete(batch.present, index, axis=1),
        {f.name: batch.values[f.name] for f in keep}, batch.attributes,
    )  # fmt: skip
    corpus = build_corpus([("a", narrowed)], default_schema())
    similarity = similarities(corpus, np.array([[0, 1], [0, 2]], dtype=np.int64))["given_name"]
    assert similarity[0] == 1.0  # the family names' copies so salted are equal: comparable
    assert np.isnan(similarity[1])  # another postcode: the partner copies differ


def test_a_copy_salted_with_the_other_name_grades_a_typo_and_vouches_for_the_other_name() -> None:
    rows = [
        ["0", "jonathan", "robertson", "1980-02-29", "CT9 1AB"],
        ["1", "jonathon", "robertson", "1975-01-01", "CT9 1AB"],  # given name mistyped
        ["2", "jonathan", "robertsen", "", "CT9 1AB"],  # family name mistyped, no date
        ["3", "jonathon", "robertsen", "1975-01-01", "CT9 1AB"],  # both mistyped
        ["4", "jonathon", "robertson", "1975-01-01", "CT9 2XY"],  # another postcode
        ["5", "peter", "robertson", "1975-01-01", "CT9 1AB"],  # another given name
    ]
    corpus = _corpus(rows)
    pairs = np.array([[0, k] for k in range(1, 6)], dtype=np.int64)
    sims = similarities(corpus, pairs)
    given, family = sims["given_name"], sims["family_name"]
    # The given name's copy shares its salt (postcode and family name): graded, and so the
    # family names are equal; and the other way round.
    assert SALT_AGREEMENT_DICE <= given[0] < 1.0 and family[0] == 1.0
    assert given[1] == 1.0 and SALT_AGREEMENT_DICE <= family[1] < 1.0
    # Neither salt agrees, or the postcodes differ, or a low Dice: one name differs and
    # nothing says which; missing, never a disagreement.
    assert np.isnan(given[2:]).all() and np.isnan(family[2:]).all()
    fields = model_fields(corpus)
    levels = comparison_levels(corpus, pairs, fields, DEFAULT_MODELS)
    by_level = DEFAULT_MODELS["given_name"].levels(np.array([given[0]]))
    assert levels[0, fields.index("given_name")] == by_level[0] > 0
    assert levels[0, fields.index("family_name")] == 0
    assert (levels[2:, fields.index("given_name")] == MISSING).all()


def test_the_other_name_salted_similarity_reads_a_copy_and_its_partner() -> None:
    nan = float("nan")
    own = np.array([1.0, 0.82, 0.45, 0.45, 0.45, nan, 0.82])
    partner = np.array([1.0, 0.4, 0.9, 0.5, nan, 1.0, nan])
    got = other_name_salted_similarity(own, partner)
    assert got[:3].tolist() == [1.0, 0.82, 1.0]  # own salt agrees; partner's: this name equal
    assert np.isnan(got[3:6]).all()  # neither agrees; a missing partner; this name missing
    assert got[6] == 0.82


def test_build_corpus_refuses_a_schema_the_encodings_were_not_made_under() -> None:
    batch = _encode([["0", "anna", "smith", "1980-02-29", "CT9 1AB"]])
    with pytest.raises(InputError) as caught:
        build_corpus([("a", batch)], default_v1_schema())
    assert "another linkage schema" in caught.value.message and caught.value.fix


def test_blocking_bands_each_copy_and_finds_a_person_by_either_salt() -> None:
    rows = [
        ["0", "anna", "smith", "1980-02-29", "CT9 1AB"],
        ["1", "anna", "smith", "1980-02-29", "SB1 2DL"],  # moved: found by the date copies
        ["2", "anna", "smith", "1908-02-29", "CT9 1AB"],  # date mistyped: the postcode copies
    ]
    corpus = _corpus(rows)
    engine = LocalEngine()
    assert engine.blocking_for(corpus) == COPIES_BLOCKING
    banded = field_pairs(corpus, COPIES_BLOCKING)
    assert ("given_name@date_of_birth", "family_name@date_of_birth") in banded
    assert ("given_name@postcode", "family_name@postcode") in banded
    assert ("given_name@date_of_birth", "family_name@postcode") not in banded
    assert ("address", "address") in COPIES_BLOCKING.field_pairs
    found = {tuple(p) for p in candidate_pairs(corpus, COPIES_BLOCKING).tolist()}
    assert {(0, 1), (0, 2)} <= found
    result = engine.link(corpus)
    assert len(set(result.entity_ids)) < 3


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(alphabet="abcé -", min_size=1, max_size=6)),
            st.one_of(st.none(), st.sampled_from(["", "1980-02-29", "CT9 1AB", "2000"])),
        ),
        max_size=12,
    )
)
def test_the_vectorised_salted_encoding_gives_encode_manys_bytes(
    pairs: list[tuple[str | None, str | None]],
) -> None:
    spec = default_schema().field("family_name")
    encoder = BloomEncoder(filter_spec(spec), _key("family_name"))
    values = [v for v, _ in pairs]
    salts = [s for _, s in pairs]
    fast = salted_filters(encoder, values, salts)
    kept = [None if s is None else v for v, s in pairs]
    assert fast.shape == (len(pairs), 32)
    assert np.array_equal(fast, encoder.encode_many(kept, [s or "" for s in salts]))


SALT_PARTS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["CT9 1AB", "SB1 2DL", "ß"]), st.sampled_from(["smith", "o neil"])),
)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@settings(max_examples=30, deadline=None)
@given(
    people=st.lists(
        st.tuples(st.one_of(st.none(), st.text(alphabet="abé -", min_size=1, max_size=7)),
                  SALT_PARTS),
        max_size=10,
    ),
    run=st.integers(1, 40),
)  # fmt: skip
def test_both_back_ends_give_the_definitions_bytes_in_runs_of_any_length(
    people: list[tuple[str | None, tuple[str, str] | None]],
    run: int,
    compiled: bool,
) -> None:
    if compiled:
        require(copy_kernels.NUMBA_AVAILABLE, "numba (the compiled salted-copy loops)")
    spec = default_schema().field("family_name")
    key, kind = _key("family_name"), "postcode_other_name"
    values, salts = [v for v, _ in people], [s for _, s in people]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(copy_kernels, "COMPILED", compiled)
        patch.setattr(copy_kernels, "COMPILED_FROM_RECORDS", 0)  # compiled for a small batch too
        patch.setattr(salted_positions, "_PAIRS_PER_RUN", run)  # runs of a few pairs
        keys = salted_positions.copy_keys(key, kind)
        filters = salted_positions.copy_filters(keys, filter_spec(spec), values, salts)
        side_by_side = np.zeros((len(people), 64), dtype=np.uint8)  # written in place, as copy 2
        parts = [CodedColumn.of([None if s is None else s[i] for s in salts]) for i in (0, 1)]
        salted_positions.coded_copy_filters(
            keys, filter_spec(spec), CodedColumn.of(values), parts, out=side_by_side, column=32
        )
    assert np.array_equal(side_by_side[:, 32:], filters) and not side_by_side[:, :32].any()
    assert filters.shape == (len(people), 32)
    for row, (value, salt) in enumerate(people):
        if value is None or salt is None:
            assert not filters[row].any()
        else:
            assert filters[row].tobytes() == _by_definition(key, spec, kind, value, salt)


def test_the_compiled_loops_load_in_a_thread_that_the_first_use_waits_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(copy_kernels.NUMBA_AVAILABLE, "numba (the compiled salted-copy loops)")
    monkeypatch.setattr(copy_kernels, "_loops", None)  # not loaded yet (in this test's view)
    monkeypatch.setattr(copy_kernels, "_loader", None)
    copy_kernels.load_in_background()  # as one process does while it reads a large file
    loops = copy_kernels.compiled_loops()  # waits for the thread's load, loads nothing twice
    assert loops is copy_kernels._loops and copy_kernels.use_compiled(1)  # any batch from now
    assert copy_kernels._loader is not None
    copy_kernels._loader.join(timeout=10)
    assert not any(thread.name == "numba-load" for thread in threading.enumerate())


def test_the_second_process_loads_the_loops_without_scipy_linalg_and_they_agree() -> None:
    """In a fresh interpreter (as the forked child is, numba not yet imported), the loops load
    without scipy.linalg, set the same bits as numpy's back end, and leave scipy.linalg free to
    be imported normally afterwards."""
    import subprocess
    import sys

    require(copy_kernels.NUMBA_AVAILABLE, "numba (the compiled salted-copy loops)")
    script = """
import sys
import numpy as np
from gateway import copy_kernels
assert "numba" not in sys.modules
loops = copy_kernels.compiled_loops_alone()
assert loops is copy_kernels._loops and "scipy.linalg" not in sys.modules
import scipy.linalg  # refused only while numba loaded
rng = np.random.default_rng(7)
salts = rng.integers(0, 256, (300, 16), dtype=np.uint8)
tokens = rng.integers(0, 256, (40, 16), dtype=np.uint8)
ids = rng.integers(0, 41, (300, 6)).astype(np.int32)
value_row = np.where(rng.random(300) < 0.1, -1, np.arange(300)).astype(np.int32)
out = {}
for compiled in (True, False):
    counts = np.where(value_row >= 0, (ids[np.maximum(value_row, 0)] < 40).sum(1), 0)
    layout = copy_kernels.PairLayout(ids, value_row, np.concatenate([[0], np.cumsum(counts)]),
                                     40, copy_kernels.counter_words(2), compiled)
    blocks = np.zeros((int(counts.sum()) * 2, 2), dtype=np.uint64)
    written = copy_kernels.pair_blocks(salts, tokens, layout, 0, 300, blocks)
    stream = blocks[:written].view(np.uint8).reshape(-1)
    filters = np.zeros((300, 32), dtype=np.uint8)
    copy_kernels.set_bits(stream, layout, 0, 300, stride=32, hashes=20, word=1, bits=256,
                          out=filters)
    out[compiled] = filters
assert out[True].any() and np.array_equal(out[True], out[False])
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
