"""Unit tests of the linkage engine: corpus, blocking, comparison, classification, clustering,
the engine's template method and pairwise quality.

Kernel tests build :class:`EncodedBatch` objects with numpy; end-to-end engine tests encode a
synthetic town with the real gateway and score against the town's truth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import linkage.compare
import linkage.engine
from gateway.pipeline import context_without_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema
from keys import new_secret
from keys.errors import InputError
from linkage.blocking import (
    DEFAULT_FIELD_PAIRS,
    BlockingConfig,
    Pairs,
    _pairs_of_equal_keys,
    candidate_pairs,
    pair_completeness,
    reduction_ratio,
)
from linkage.classify import DEFAULT_MODELS, DEPENDENT_GROUPS, FieldModel, match_weights
from linkage.cluster import connected_components, entity_ids, size_distribution
from linkage.compare import dice, popcounts, similarities
from linkage.corpus import EncodedCorpus, build_corpus
from linkage.engine import Engine, LinkResult, LocalEngine, Scorer
from linkage.quality import pairwise_quality
from placelink.town import AGENCIES, generate_town, write_canonical_csv
from policies.clks import PSEUDONYM_BYTES, EncodedBatch, FieldLayout

# Small layouts for kernel tests: two fuzzy fields, a date, a postcode and an exact token.
LAYOUT = (
    FieldLayout("given_name", "bloom", 16),
    FieldLayout("family_name", "bloom", 16),
    FieldLayout("date_of_birth", "bloom", 8),
    FieldLayout("postcode", "bloom", 8),
    FieldLayout("nhs_number", "token", 16),
)
TOWN_SEED, TOWN_PEOPLE = 4, 400
Uint8s = npt.NDArray[np.uint8]


def make_batch(
    values: dict[str, Uint8s],
    present: npt.NDArray[np.bool_],
    *,
    layout: tuple[FieldLayout, ...] = LAYOUT,
    schema_hash: str = "a" * 64,
    policy_id: str = "policy-a",
    epoch: int = 0,
    first_pseudonym: int = 0,
) -> EncodedBatch:
    """An encoded batch built directly, pseudonyms 0, 1, 2, ... from ``first_pseudonym``."""
    count = len(present)
    pseudonyms = np.array(
        [list((first_pseudonym + i).to_bytes(PSEUDONYM_BYTES, "big")) for i in range(count)],
        dtype=np.uint8,
    ).reshape(count, PSEUDONYM_BYTES)
    return EncodedBatch(
        schema_hash=schema_hash,
        policy_id=policy_id,
        policy_version="1",
        epoch=epoch,
        fields=layout,
        attribute_names=(),
        pseudonyms=pseudonyms,
        present=present,
        values=values,
        attributes=[[] for _ in range(count)],
    )


def random_batch(rng: np.random.Generator, count: int, *, first_pseudonym: int = 0) -> EncodedBatch:
    values = {f.name: rng.integers(0, 256, (count, f.nbytes), dtype=np.uint8) for f in LAYOUT}
    present = np.ones((count, len(LAYOUT)), dtype=bool)
    return make_batch(values, present, first_pseudonym=first_pseudonym)


# --- corpus -------------------------------------------------------------------------------


def test_build_corpus_concatenates_sources_in_order() -> None:
    rng = np.random.default_rng(1)
    first, second = random_batch(rng, 3), random_batch(rng, 2, first_pseudonym=100)
    corpus = build_corpus([("police", first), ("housing", second)])
    assert len(corpus) == 5
    assert corpus.source_names == ("police", "housing")
    assert corpus.source_index.tolist() == [0, 0, 0, 1, 1]
    assert corpus.member_key(3) == "housing:" + second.pseudonym_hex(0)
    for layout in LAYOUT:
        expected = np.vstack([first.values[layout.name], second.values[layout.name]])
        assert np.array_equal(corpus.fields[layout.name].values, expected)
        assert corpus.fields[layout.name].encoding == layout.encoding


@pytest.mark.parametrize(
    "change",
    [
        {"schema_hash": "b" * 64},
        {"policy_id": "policy-b"},
        {"epoch": 1},
        {"fields": (*LAYOUT[:-1], FieldLayout("nhs_number", "token", 8))},
    ],
    ids=["schema-hash", "policy", "epoch", "field-layout"],
)
def test_build_corpus_refuses_incompatible_batches(change: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    good = random_batch(rng, 3)
    other = dataclasses.replace(random_batch(rng, 2, first_pseudonym=50), **change)
    with pytest.raises(InputError) as caught:
        build_corpus([("police", good), ("housing", other)])
    assert "'housing'" in caught.value.message
    assert caught.value.fix


def test_build_corpus_refuses_nothing_to_link() -> None:
    with pytest.raises(InputError):
        build_corpus([])


# --- blocking -----------------------------------------------------------------------------


def brute_force_equal_pairs(keys: list[int], rows: list[int]) -> list[tuple[int, int]]:
    return sorted(
        (min(rows[a], rows[b]), max(rows[a], rows[b]))
        for a, b in itertools.combinations(range(len(keys)), 2)
        if keys[a] == keys[b]
    )


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.one_of(st.integers(0, 4), st.integers(0, 2**64 - 1)), min_size=0, max_size=40),
    data=st.data(),
)
def test_pairs_of_equal_keys_matches_brute_force(keys: list[int], data: st.DataObject) -> None:
    size = len(keys)
    rows = data.draw(st.lists(st.integers(0, 10_000), min_size=size, max_size=size, unique=True))
    found = _pairs_of_equal_keys(np.array(keys, dtype=np.uint64), np.array(rows, dtype=np.int64))
    assert found.ndim == 2 and found.shape[1] == 2
    assert sorted(map(tuple, found.tolist())) == brute_force_equal_pairs(keys, rows)


Columns = tuple[dict[str, Uint8s], npt.NDArray[np.bool_]]


@st.composite
def columns(draw: st.DrawFn) -> Columns:
    """Values and presence with few distinct values per field, so that LSH bands collide."""
    count = draw(st.integers(2, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = {}
    for f in LAYOUT:
        pool = rng.integers(0, 256, (draw(st.integers(1, 4)), f.nbytes), dtype=np.uint8)
        values[f.name] = pool[rng.integers(0, len(pool), count)]
    present = rng.random((count, len(LAYOUT))) < draw(st.floats(0.3, 1.0))
    return values, present


def blocking_corpus_strategy() -> st.SearchStrategy[EncodedCorpus]:
    return columns().map(lambda c: build_corpus([("a", make_batch(*c))]))


@settings(max_examples=100, deadline=None)
@given(corpus=blocking_corpus_strategy())
def test_candidate_pairs_are_unique_and_ordered(corpus: EncodedCorpus) -> None:
    pairs = candidate_pairs(corpus, BlockingConfig(bands=2, bits_per_field=4))
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert np.all((pairs >= 0) & (pairs < len(corpus)))
    assert len({(int(i), int(j)) for i, j in pairs}) == len(pairs)


def blockable(present: npt.NDArray[np.bool_]) -> bool:
    """Has both fields of some blocking pair, or the exact token."""
    index = {f.name: k for k, f in enumerate(LAYOUT)}
    pairs = [(a, b) for a, b in DEFAULT_FIELD_PAIRS if a in index and b in index]
    return bool(present[index["nhs_number"]]) or any(
        present[index[a]] and present[index[b]] for a, b in pairs
    )


@settings(max_examples=100, deadline=None)
@given(cols=columns(), data=st.data())
def test_identical_records_always_become_candidates(cols: Columns, data: st.DataObject) -> None:
    values, present = cols
    original = data.draw(st.integers(0, len(present) - 1))
    assume(blockable(present[original]))
    # The same record again, as another source's record.
    copy = make_batch(
        {name: column[[original]] for name, column in values.items()},
        present[[original]],
        first_pseudonym=10_000,
    )
    corpus = build_corpus([("a", make_batch(values, present)), ("b", copy)])
    pairs = {(int(i), int(j)) for i, j in candidate_pairs(corpus)}
    assert (original, len(present)) in pairs


def test_records_without_a_shared_blocking_key_are_not_candidates() -> None:
    rng = np.random.default_rng(3)
    batch = random_batch(rng, 2)
    pairs = candidate_pairs(build_corpus([("a", batch)]), BlockingConfig(bits_per_field=32))
    assert pairs.shape == (0, 2)


def test_pair_completeness_and_reduction_ratio_on_toy_inputs() -> None:
    pairs = np.array([[0, 1], [1, 2]], dtype=np.int64)
    assert reduction_ratio(pairs, 4) == pytest.approx(1 - 2 / 6)
    assert reduction_ratio(np.empty((0, 2), dtype=np.int64), 4) == 1.0
    assert reduction_ratio(pairs, 1) == 1.0
    assert reduction_ratio(pairs, 0) == 1.0
    assert pair_completeness(pairs, {(0, 1), (2, 3)}) == 0.5
    assert pair_completeness(pairs, {(0, 1), (1, 2)}) == 1.0
    assert pair_completeness(pairs, {(0, 3)}) == 0.0
    assert pair_completeness(pairs, set()) == 1.0


# --- comparison ---------------------------------------------------------------------------


def python_popcount(row: bytes) -> int:
    return bin(int.from_bytes(row, "big")).count("1")


def python_dice(a: bytes, b: bytes) -> float:
    common = python_popcount(bytes(x & y for x, y in zip(a, b, strict=True)))
    total = python_popcount(a) + python_popcount(b)
    return 2 * common / total if total else 0.0


@st.composite
def filter_pairs(draw: st.DrawFn) -> tuple[Uint8s, Uint8s]:
    nbytes = 8 * draw(st.integers(1, 16))  # 64 .. 1024 bits
    rows = draw(st.integers(1, 12))
    byte = st.one_of(st.just(0), st.integers(0, 255))  # sparse rows and empty rows too
    a = draw(arrays(np.uint8, (rows, nbytes), elements=byte))
    b = draw(arrays(np.uint8, (rows, nbytes), elements=byte))
    return a, b


@settings(max_examples=150, deadline=None)
@given(filters=filter_pairs())
def test_dice_matches_python_popcount_reference(filters: tuple[Uint8s, Uint8s]) -> None:
    a, b = filters
    count_a, count_b = popcounts(a), popcounts(b)
    assert count_a.tolist() == [python_popcount(bytes(row)) for row in a]
    result = dice(a, b, count_a, count_b)
    expected = [python_dice(bytes(x), bytes(y)) for x, y in zip(a, b, strict=True)]
    assert result.tolist() == pytest.approx(expected, abs=1e-12)
    assert np.all((result >= 0.0) & (result <= 1.0))


def test_dice_of_two_empty_filters_is_zero_and_of_equal_filters_is_one() -> None:
    empty = np.zeros((1, 32), dtype=np.uint8)
    full = np.full((1, 32), 0b10100101, dtype=np.uint8)
    assert dice(empty, empty, popcounts(empty), popcounts(empty)).tolist() == [0.0]
    assert dice(full, full, popcounts(full), popcounts(full)).tolist() == [1.0]
    assert dice(empty, full, popcounts(empty), popcounts(full)).tolist() == [0.0]


def two_field_corpus(bloom: Uint8s, token: Uint8s, present: npt.NDArray[np.bool_]) -> EncodedCorpus:
    layout = (FieldLayout("given_name", "bloom", bloom.shape[1]), FieldLayout("nhs", "token", 16))
    batch = make_batch({"given_name": bloom, "nhs": token}, present, layout=layout)
    return build_corpus([("a", batch)])


def test_similarity_is_nan_when_a_field_is_missing_on_either_side() -> None:
    rng = np.random.default_rng(4)
    bloom = rng.integers(0, 256, (4, 16), dtype=np.uint8)
    token = np.tile(rng.integers(0, 256, 16, dtype=np.uint8), (4, 1))
    present = np.array([[True, True], [False, True], [True, False], [True, True]])
    corpus = two_field_corpus(bloom, token, present)
    pairs = np.array([[0, 1], [0, 2], [1, 2], [0, 3]], dtype=np.int64)
    result = similarities(corpus, pairs)
    assert np.isnan(result["given_name"][:3]).tolist() == [True, False, True]
    assert not np.isnan(result["given_name"][3])
    assert np.isnan(result["nhs"]).tolist() == [False, True, True, False]


def test_token_similarity_is_one_when_equal_and_zero_otherwise() -> None:
    rng = np.random.default_rng(5)
    bloom = rng.integers(0, 256, (3, 8), dtype=np.uint8)
    token = rng.integers(0, 256, (3, 16), dtype=np.uint8)
    token[1] = token[0]
    token[2] = token[0]
    token[2, 15] ^= 1  # one bit apart is still a different token
    corpus = two_field_corpus(bloom, token, np.ones((3, 2), dtype=bool))
    pairs = np.array([[0, 1], [0, 2], [1, 2]], dtype=np.int64)
    assert similarities(corpus, pairs)["nhs"].tolist() == [1.0, 0.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(corpus=blocking_corpus_strategy(), chunk=st.integers(1, 7))
def test_similarities_do_not_depend_on_chunk_size(corpus: EncodedCorpus, chunk: int) -> None:
    pairs = np.array(list(itertools.combinations(range(len(corpus)), 2)), dtype=np.int64)
    whole = similarities(corpus, pairs)
    saved = linkage.compare.CHUNK
    linkage.compare.CHUNK = chunk
    try:
        chunked = similarities(corpus, pairs)
    finally:
        linkage.compare.CHUNK = saved
    for name, values in whole.items():
        assert np.array_equal(values, chunked[name], equal_nan=True)


# --- classification -----------------------------------------------------------------------

unit_float = st.floats(0.0, 1.0, allow_nan=False)


@pytest.mark.parametrize("name", sorted(DEFAULT_MODELS))
def test_level_weights_fall_from_best_level_to_else(name: str) -> None:
    model = DEFAULT_MODELS[name]
    weights = model.weights()
    assert len(weights) == len(model.thresholds) + 1 == len(model.m) == len(model.u)
    assert np.all(np.diff(weights) < 0)
    assert list(model.thresholds) == sorted(model.thresholds, reverse=True)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(DEFAULT_MODELS)), low=unit_float, high=unit_float)
def test_higher_similarity_never_lowers_a_fields_weight(name: str, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    model = DEFAULT_MODELS[name]
    levels = model.levels(np.array([low, high]))
    assert levels[0] >= levels[1]
    _, parts = match_weights({name: np.array([low, high])})
    assert parts[name][0] <= parts[name][1]


def test_levels_fall_on_thresholds() -> None:
    model = FieldModel((0.9, 0.5), (0.8, 0.15, 0.05), (0.01, 0.09, 0.9))
    levels = model.levels(np.array([1.0, 0.9, 0.8999, 0.5, 0.4999, 0.0]))
    assert levels.tolist() == [0, 0, 1, 1, 2, 2]


similarity_value = st.one_of(st.just(math.nan), unit_float)


@settings(max_examples=150, deadline=None)
@given(
    values=st.fixed_dictionaries({name: similarity_value for name in DEFAULT_MODELS}),
)
def test_missing_fields_contribute_nothing_and_groups_count_once(
    values: dict[str, float],
) -> None:
    similarity = {name: np.array([v]) for name, v in values.items()}
    total, parts = match_weights(similarity)
    for name, value in values.items():
        if math.isnan(value):
            assert parts[name][0] == 0.0
    grouped = {n for group in DEPENDENT_GROUPS for n in group}
    expected = sum(parts[n][0] for n in values if n not in grouped)
    for group in DEPENDENT_GROUPS:
        present = [parts[n][0] for n in group if not math.isnan(values[n])]
        expected += max(present, default=0.0)
    assert total[0] == pytest.approx(expected)
    # Dropping every missing field from the input changes nothing.
    kept = {n: s for n, s in similarity.items() if not math.isnan(values[n])}
    if kept:
        assert match_weights(kept)[0][0] == pytest.approx(total[0])


def test_address_and_postcode_agreeing_count_once_as_the_strongest() -> None:
    address, postcode = DEFAULT_MODELS["address"], DEFAULT_MODELS["postcode"]
    total, parts = match_weights({"address": np.array([1.0]), "postcode": np.array([1.0])})
    best = max(address.weights()[0], postcode.weights()[0])
    assert parts["address"][0] == address.weights()[0]
    assert parts["postcode"][0] == postcode.weights()[0]
    assert total[0] == pytest.approx(best)
    assert total[0] < parts["address"][0] + parts["postcode"][0]
    only_postcode, _ = match_weights({"address": np.array([math.nan]), "postcode": np.array([1.0])})
    assert only_postcode[0] == pytest.approx(postcode.weights()[0])


def test_fields_without_a_model_are_ignored() -> None:
    total, parts = match_weights({"favourite_colour": np.array([1.0, 0.0])})
    assert parts == {}
    assert total.tolist() == [0.0, 0.0]


# --- clustering ---------------------------------------------------------------------------


def reference_components(count: int, links: list[tuple[int, int]]) -> list[int]:
    neighbours: dict[int, set[int]] = defaultdict(set)
    for i, j in links:
        neighbours[i].add(j)
        neighbours[j].add(i)
    label = [-1] * count
    for start in range(count):
        if label[start] >= 0:
            continue
        stack, members = [start], {start}
        while stack:
            for other in neighbours[stack.pop()]:
                if other not in members:
                    members.add(other)
                    stack.append(other)
        for member in members:
            label[member] = min(members)
    return label


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    count = draw(st.integers(1, 40))
    edge = st.tuples(st.integers(0, count - 1), st.integers(0, count - 1))
    return count, draw(st.lists(edge, max_size=2 * count))


def as_pairs(links: list[tuple[int, int]]) -> Pairs:
    return np.array(links, dtype=np.int64).reshape(-1, 2)


@settings(max_examples=200, deadline=None)
@given(graph=graphs())
def test_connected_components_match_reference(graph: tuple[int, list[tuple[int, int]]]) -> None:
    count, links = graph
    labels = connected_components(count, as_pairs(links))
    assert labels.tolist() == reference_components(count, links)


@settings(max_examples=100, deadline=None)
@given(graph=graphs(), data=st.data())
def test_entity_ids_survive_row_permutation_and_relabelling(
    graph: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    count, links = graph
    keys = [f"src:{k:04d}" for k in data.draw(st.permutations(range(count)))]
    ids = entity_ids(connected_components(count, as_pairs(links)), keys)
    order = data.draw(st.permutations(range(count)))  # new row k is old row order[k]
    position = {old: new for new, old in enumerate(order)}
    moved = [(position[i], position[j]) for i, j in links]
    permuted = entity_ids(
        connected_components(count, as_pairs(moved)), [keys[old] for old in order]
    )
    assert permuted == [ids[old] for old in order]
    # Any injective relabelling of the components names the same entities.
    labels = connected_components(count, as_pairs(links))
    assert entity_ids(labels * 7 + 1000, keys) == ids


@settings(max_examples=100, deadline=None)
@given(graph=graphs())
def test_entity_id_is_a_hash_of_the_smallest_member_key(
    graph: tuple[int, list[tuple[int, int]]],
) -> None:
    count, links = graph
    keys = [f"police:{(k * 37) % 101:03d}" for k in range(count)]
    labels = connected_components(count, as_pairs(links))
    ids = entity_ids(labels, keys)
    for row in range(count):
        smallest = min(keys[k] for k in range(count) if labels[k] == labels[row])
        assert ids[row] == "E" + hashlib.sha256(smallest.encode()).hexdigest()[:16]
    assert len(set(ids)) == len(set(labels.tolist()))


def test_entity_id_changes_only_when_a_smaller_key_joins() -> None:
    labels = np.array([0, 0], dtype=np.int64)
    base = entity_ids(labels, ["b:2", "b:3"])
    larger = entity_ids(np.array([0, 0, 0], dtype=np.int64), ["b:2", "b:3", "c:1"])
    smaller = entity_ids(np.array([0, 0, 0], dtype=np.int64), ["b:2", "b:3", "a:9"])
    assert larger[:2] == base
    assert smaller[0] != base[0]


@settings(max_examples=100, deadline=None)
@given(graph=graphs())
def test_size_distribution_sums_to_row_count(graph: tuple[int, list[tuple[int, int]]]) -> None:
    count, links = graph
    labels = connected_components(count, as_pairs(links))
    sizes = size_distribution(labels)
    assert sum(size * clusters for size, clusters in sizes.items()) == count
    assert sum(sizes.values()) == len(set(labels.tolist()))
    assert list(sizes) == sorted(sizes)


# --- engine on a synthetic town -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodedTown:
    corpus: EncodedCorpus
    truth: dict[str, str]  # member key -> person id
    true_pairs: set[tuple[int, int]]


@pytest.fixture(scope="module")
def encoded_town(tmp_path_factory: pytest.TempPathFactory) -> EncodedTown:
    folder: Path = tmp_path_factory.mktemp("town")
    town = generate_town(seed=TOWN_SEED, people=TOWN_PEOPLE)
    person = {(agency, record): pid for agency, record, pid in town.truth}
    context = context_without_policy(default_schema(), policy_id="unit-test", epoch=0)
    secret = new_secret()
    batches, truth = [], {}
    for agency in AGENCIES:
        path = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], path)
        pseudonyms = PseudonymMap()
        result = encode_csv(path, secret=secret, context=context, pseudonyms=pseudonyms)
        batches.append((agency, result.batch))
        for pseudonym, record in pseudonyms.record_for().items():
            truth[f"{agency}:{pseudonym}"] = person[(agency, record)]
    corpus = build_corpus(batches, default_schema())
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row in range(len(corpus)):
        rows_of[truth[corpus.member_key(row)]].append(row)
    true_pairs = {pair for rows in rows_of.values() for pair in itertools.combinations(rows, 2)}
    assert true_pairs, "the town should have people known to several agencies"
    return EncodedTown(corpus, truth, true_pairs)


def predicted(corpus: EncodedCorpus, result: LinkResult) -> dict[str, str]:
    return {corpus.member_key(row): entity for row, entity in enumerate(result.entity_ids)}


def test_blocking_keeps_true_pairs_of_a_town(encoded_town: EncodedTown) -> None:
    pairs = candidate_pairs(encoded_town.corpus, LocalEngine().blocking_for(encoded_town.corpus))
    assert pair_completeness(pairs, encoded_town.true_pairs) >= 0.99
    assert reduction_ratio(pairs, len(encoded_town.corpus)) >= 0.9


def test_local_engine_links_a_town_with_high_pairwise_f1(encoded_town: EncodedTown) -> None:
    corpus = encoded_town.corpus
    result = LocalEngine().link(corpus)
    quality = pairwise_quality(predicted(corpus, result), encoded_town.truth)
    assert quality.true_pairs == len(encoded_town.true_pairs)
    assert quality.f1 >= 0.97, quality
    assert len(result.entity_ids) == len(corpus)
    assert result.entity_count == len(set(result.entity_ids))
    assert sum(s * n for s, n in result.cluster_sizes.items()) == len(corpus)
    assert result.links <= result.candidate_pairs


def test_linking_twice_gives_identical_entities(encoded_town: EncodedTown) -> None:
    first = LocalEngine().link(encoded_town.corpus)
    second = LocalEngine().link(encoded_town.corpus)
    assert first == second


class ReversedEngine(Engine):
    """A backend that runs partitions last-first and puts the results back in order."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions_seen = 0

    def map_partitions(
        self, scorer: Scorer, corpus: EncodedCorpus, partitions: Sequence[Pairs]
    ) -> list[npt.NDArray[np.float64]]:
        self.partitions_seen = len(partitions)
        results = [scorer(corpus, part) for part in reversed(partitions)]
        return results[::-1]


def test_engine_template_is_backend_agnostic(
    encoded_town: EncodedTown, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = LocalEngine().link(encoded_town.corpus)
    monkeypatch.setattr(linkage.engine, "PARTITION_PAIRS", 97)
    backend = ReversedEngine()
    reversed_result = backend.link(encoded_town.corpus)
    assert backend.partitions_seen == math.ceil(local.candidate_pairs / 97) > 1
    assert reversed_result == local
    assert LocalEngine().link(encoded_town.corpus) == local


def test_engine_on_a_single_record_gives_one_entity() -> None:
    batch = random_batch(np.random.default_rng(6), 1)
    result = LocalEngine().link(build_corpus([("police", batch)]))
    assert result.candidate_pairs == 0 and result.links == 0
    assert result.cluster_sizes == {1: 1}
    expected = "E" + hashlib.sha256(f"police:{batch.pseudonym_hex(0)}".encode()).hexdigest()[:16]
    assert result.entity_ids == [expected]


# --- quality ------------------------------------------------------------------------------


def test_pairwise_quality_on_a_hand_computed_example() -> None:
    predicted = {"a": "1", "b": "1", "c": "1", "d": "2", "unknown-to-truth": "1"}
    truth = {"a": "x", "b": "x", "c": "y", "d": "y", "unknown-to-prediction": "x"}
    quality = pairwise_quality(predicted, truth)
    # predicted pairs ab ac bc; true pairs ab cd; correct: ab.
    assert (quality.true_positives, quality.predicted_pairs, quality.true_pairs) == (1, 3, 2)
    assert quality.precision == pytest.approx(1 / 3)
    assert quality.recall == pytest.approx(1 / 2)
    assert quality.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_pairwise_quality_splitting_everything_has_no_recall() -> None:
    quality = pairwise_quality({"a": "1", "b": "2"}, {"a": "x", "b": "x"})
    assert (quality.precision, quality.recall, quality.f1) == (1.0, 0.0, 0.0)


def test_perfect_prediction_scores_one() -> None:
    truth = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    renamed = {key: f"E-{person}" for key, person in truth.items()}
    quality = pairwise_quality(renamed, truth)
    assert (quality.precision, quality.recall, quality.f1) == (1.0, 1.0, 1.0)
