"""The Fellegi-Sunter EM, average-linkage clustering, stable entity ids and incremental linking.

Engine-level tests use a synthetic town encoded with the real gateway (see the engine tests).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline import context_without_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema
from keys import new_secret
from linkage.classify import DEFAULT_MODELS, FieldModel
from linkage.cluster import average_linkage_clusters, connected_components, entity_ids
from linkage.compare import MISSING, comparison_levels
from linkage.corpus import EncodedCorpus, build_corpus
from linkage.engine import COPIES_BLOCKING, LinkResult, LocalEngine, PreviousLinkage, model_fields
from linkage.explain import explain_pair
from linkage.fellegi_sunter import (
    FittedModel,
    estimate_model,
    is_plausible,
    model_from_json,
    model_to_json,
    pattern_weights,
    prior_model,
)
from linkage.quality import pairwise_quality
from placelink.town import AGENCIES, generate_town, write_canonical_csv

FIELDS = ("given_name", "family_name", "date_of_birth")

# --- EM ---------------------------------------------------------------------------------


def simulate_levels(
    rng: np.random.Generator, truth: FittedModel, pairs: int
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    matches = rng.random(pairs) < truth.match_share
    levels = np.empty((pairs, len(truth.fields)), dtype=np.int8)
    for column, model in enumerate(truth.models):
        levels[matches, column] = rng.choice(len(model.m), matches.sum(), p=model.m)
        levels[~matches, column] = rng.choice(len(model.u), (~matches).sum(), p=model.u)
    missing = rng.random(levels.shape) < 0.05
    levels[missing] = MISSING
    return levels, matches


def a_true_model() -> FittedModel:
    names = (0.95, 0.88, 0.8, 0.7, 0.6)
    return FittedModel(
        FIELDS,
        (
            FieldModel(
                names, (0.8, 0.08, 0.04, 0.03, 0.02, 0.03), (0.02, 0.01, 0.02, 0.05, 0.1, 0.8)
            ),
            FieldModel(
                names, (0.75, 0.1, 0.05, 0.04, 0.03, 0.03), (0.01, 0.01, 0.02, 0.06, 0.1, 0.8)
            ),
            FieldModel(
                (0.95, 0.8, 0.68, 0.5),
                (0.9, 0.04, 0.03, 0.02, 0.01),
                (0.001, 0.004, 0.03, 0.1, 0.865),
            ),
        ),
        0.03,
    )


def test_em_recovers_the_parameters_that_generated_the_levels() -> None:
    truth = a_true_model()
    levels, _ = simulate_levels(np.random.default_rng(1), truth, 200_000)
    fitted = estimate_model(levels, FIELDS)
    assert fitted.estimated and fitted.converged
    assert fitted.match_share == pytest.approx(truth.match_share, rel=0.1)
    for got, want in zip(fitted.models, truth.models, strict=True):
        assert np.allclose(got.m, np.maximum(want.m, 0.01), atol=0.03)
        assert np.allclose(got.u, want.u, atol=0.01)


def test_em_weights_separate_simulated_matches() -> None:
    truth = a_true_model()
    levels, matches = simulate_levels(np.random.default_rng(2), truth, 100_000)
    fitted = estimate_model(levels, FIELDS)
    predicted = fitted.weights(levels) >= fitted.default_threshold()
    agree = (predicted == matches).mean()
    assert agree >= 0.99


def test_em_without_pairs_gives_the_priors() -> None:
    assert estimate_model(np.empty((0, 3), dtype=np.int8), FIELDS) == prior_model(FIELDS)


def test_an_implausible_fit_falls_back_to_the_priors() -> None:
    prior = prior_model(FIELDS)
    swapped = FittedModel(
        FIELDS,
        tuple(
            FieldModel(m.thresholds, m.u, m.m) for m in prior.models
        ),  # agreement as evidence against
        0.3,
    )
    assert is_plausible(prior) and not is_plausible(swapped)


def test_the_em_fits_a_joint_table_for_the_names_and_keeps_it_in_json() -> None:
    truth = a_true_model()
    levels, _ = simulate_levels(np.random.default_rng(3), truth, 50_000)
    fitted = estimate_model(levels, FIELDS)
    assert [g.fields for g in fitted.groups] == [("given_name", "family_name")]
    table = np.array(fitted.groups[0].m)
    assert table.shape == (6, 6) and table.sum() == pytest.approx(1.0)
    assert model_from_json(model_to_json(fitted)) == fitted


def correlated_name_levels(rng: np.random.Generator, pairs: int) -> npt.NDArray[np.int8]:
    """Non-matches share both names together far more often than independence says (one
    household), matches agree on both; the date of birth tells them apart."""
    matches = rng.random(pairs) < 0.05
    household = rng.random(pairs) < 0.1
    levels = np.full((pairs, 3), 5, dtype=np.int8)
    levels[:, 2] = np.where(matches, 0, 4)
    together = matches | household
    levels[together, 0] = 0
    levels[together, 1] = 0
    return levels


def test_a_joint_agreement_counts_between_the_stronger_name_and_both_names() -> None:
    levels = correlated_name_levels(np.random.default_rng(4), 50_000)
    fitted = estimate_model(levels, FIELDS)
    both = np.array([[0, 0, MISSING]], dtype=np.int8)
    given_only = np.array([[0, MISSING, MISSING]], dtype=np.int8)
    family_only = np.array([[MISSING, 0, MISSING]], dtype=np.int8)
    one = [float(pattern_weights(fitted, p)[0]) for p in (given_only, family_only)]
    joint = float(pattern_weights(fitted, both)[0])
    assert max(one) <= joint <= sum(one) + 1e-9


def test_a_double_name_disagreement_counts_no_more_than_the_worse_one() -> None:
    truth = a_true_model()
    levels, _ = simulate_levels(np.random.default_rng(5), truth, 50_000)
    fitted = estimate_model(levels, FIELDS)
    worst = [len(m.m) - 1 for m in fitted.models[:2]]
    both = np.array([[worst[0], worst[1], MISSING]], dtype=np.int8)
    alone = [
        float(pattern_weights(fitted, np.array([[worst[0], MISSING, MISSING]], np.int8))[0]),
        float(pattern_weights(fitted, np.array([[MISSING, worst[1], MISSING]], np.int8))[0]),
    ]
    assert float(pattern_weights(fitted, both)[0]) >= min(alone) - 1e-9


def test_salted_name_disagreements_count_nothing_unless_birth_dates_agree() -> None:
    truth = a_true_model()
    levels, _ = simulate_levels(np.random.default_rng(6), truth, 50_000)
    plain = estimate_model(levels, FIELDS)
    salted = replace(plain, salted=("given_name", "family_name"))
    assert model_from_json(model_to_json(salted)) == salted
    worst = len(plain.models[0].m) - 1
    dob_only = np.array([[MISSING, MISSING, 4], [MISSING, MISSING, 0]], dtype=np.int8)
    disagree = np.array([[worst, worst, 4], [worst, worst, 0]], dtype=np.int8)
    agree = np.array([[0, 0, 4]], dtype=np.int8)
    got, base = pattern_weights(salted, disagree), pattern_weights(salted, dob_only)
    assert got[0] == pytest.approx(base[0])  # dates differ: the names say nothing
    assert got[1] < base[1]  # dates agree: salted names disagreeing count against
    assert pattern_weights(plain, disagree)[0] < base[0]  # unsalted: always against
    assert pattern_weights(salted, agree)[0] == pytest.approx(pattern_weights(plain, agree)[0])


SWAP_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode")


def test_names_that_may_be_swapped_count_nothing_where_birth_date_and_postcode_agree() -> None:
    model = prior_model(SWAP_FIELDS)
    worst = [len(m.m) - 1 for m in model.models]
    swapped = np.array([[worst[0], worst[1], 0, 0]], dtype=np.int8)
    no_names = np.array([[MISSING, MISSING, 0, 0]], dtype=np.int8)
    assert pattern_weights(model, swapped)[0] == pytest.approx(pattern_weights(model, no_names)[0])
    # Anything short of that still counts: another postcode, another date of birth, one name
    # that agrees, one that is merely unlike.
    for levels in (
        [worst[0], worst[1], 0, worst[3]],
        [worst[0], worst[1], 1, 0],
        [worst[0], 0, 0, 0],
        [worst[0], worst[1] - 1, 0, 0],
    ):
        without = np.array([[MISSING, MISSING, *levels[2:]]], dtype=np.int8)
        with_names = np.array([levels], dtype=np.int8)
        assert pattern_weights(model, with_names)[0] != pattern_weights(model, without)[0]
    assert (
        pattern_weights(model, np.array([[worst[0], worst[1], 0, worst[3]]], np.int8))[0]
        < (pattern_weights(model, np.array([[MISSING, MISSING, 0, worst[3]]], np.int8))[0])
    )


def test_encoded_swapped_names_at_one_birth_date_and_postcode_weigh_as_missing_names(
    tmp_path: Path,
) -> None:
    rows = [
        ("a", "1", "caleb", "mckane", "1937-03-20", "CT9 1AB", "21 lochee place"),
        ("b", "1", "mckane", "caleb", "1937-03-20", "CT9 1AB", "21 lochee place"),
    ]
    batches, secret = [], new_secret()
    for source in ("a", "b"):
        path = tmp_path / f"{source}.csv"
        lines = ["record_id,given_name,family_name,date_of_birth,postcode,address"]
        lines += [",".join(row[1:]) for row in rows if row[0] == source]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        context = context_without_policy(default_schema(), policy_id="t", epoch=0)
        encoded = encode_csv(path, secret=secret, context=context, pseudonyms=PseudonymMap())
        batches.append((source, encoded.batch))
    corpus = build_corpus(batches, default_schema())
    fields = model_fields(corpus)
    pair = np.array([[0, 1]], dtype=np.int64)
    levels = comparison_levels(corpus, pair, fields, DEFAULT_MODELS)
    model = prior_model(fields)
    worst = [len(model.models[fields.index(n)].m) - 1 for n in ("given_name", "family_name")]
    # Each field has its own key: the swapped names compare as two disagreements ...
    assert levels[0, [fields.index("given_name"), fields.index("family_name")]].tolist() == worst
    # ... which the weights leave out, as a possible swap.
    no_names = levels.copy()
    no_names[0, [fields.index("given_name"), fields.index("family_name")]] = MISSING
    assert model.weights(levels)[0] == pytest.approx(model.weights(no_names)[0])
    result = LinkResult(["e0", "e1"], 1, 0, {1: 2}, model=model)
    shown = explain_pair(corpus, result, (0, 1), COPIES_BLOCKING)
    names = [e.weight for e in shown.fields if e.field in ("given_name", "family_name")]
    assert names == [0.0, 0.0] and shown.total == pytest.approx(model.weights(levels)[0])


def test_salted_names_learn_m_and_u_among_pairs_whose_birth_dates_agree() -> None:
    truth = a_true_model()
    levels, _ = simulate_levels(np.random.default_rng(7), truth, 50_000)
    salted_levels = levels.copy()
    worst = [len(m.m) - 1 for m in truth.models[:2]]
    dates_differ = levels[:, 2] != 0  # salted names of such pairs never agree
    for column in (0, 1):
        keep = salted_levels[:, column] != MISSING
        salted_levels[dates_differ & keep, column] = worst[column]
    fitted = estimate_model(salted_levels, FIELDS, salted=("given_name", "family_name"))
    for column in (0, 1):  # the top level's m as among matches whose dates agree
        assert fitted.models[column].m[0] == pytest.approx(truth.models[column].m[0], abs=0.05)
    assert fitted.match_share == pytest.approx(truth.match_share, rel=0.25)


# --- clustering ---------------------------------------------------------------------------


@st.composite
def weighted_graphs(draw: st.DrawFn) -> tuple[int, npt.NDArray[np.float64], float]:
    count = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    people = rng.integers(0, max(1, count // 2), count)
    noise = rng.normal(0, 6, (count, count))
    weights = np.where(people[:, None] == people[None, :], 12.0, -12.0) + (noise + noise.T) / 2
    return count, weights, draw(st.floats(-2.0, 8.0))


def cluster(
    count: int, weights: npt.NDArray[np.float64], threshold: float
) -> npt.NDArray[np.int64]:
    pairs = np.array(list(itertools.combinations(range(count), 2)), dtype=np.int64).reshape(-1, 2)
    w = weights[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.empty(0)
    above = w >= threshold
    labels, _ = average_linkage_clusters(
        count, pairs[above], w[above], threshold, lambda p: weights[p[:, 0], p[:, 1]]
    )
    return labels


@settings(max_examples=150, deadline=None)
@given(graph=weighted_graphs())
def test_every_cluster_averages_at_least_the_threshold(
    graph: tuple[int, npt.NDArray[np.float64], float],
) -> None:
    count, weights, threshold = graph
    labels = cluster(count, weights, threshold)
    for label in set(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        assert labels[rows].min() == rows.min()  # the label is the smallest row
        if len(rows) > 1:
            inside = [weights[i, j] for i, j in itertools.combinations(rows.tolist(), 2)]
            assert np.mean(inside) >= threshold - 1e-9


@settings(max_examples=150, deadline=None)
@given(graph=weighted_graphs())
def test_clusters_refine_the_connected_components_of_the_links(
    graph: tuple[int, npt.NDArray[np.float64], float],
) -> None:
    count, weights, threshold = graph
    labels = cluster(count, weights, threshold)
    pairs = np.array(
        [(i, j) for i, j in itertools.combinations(range(count), 2) if weights[i, j] >= threshold],
        dtype=np.int64,
    ).reshape(-1, 2)
    components = connected_components(count, pairs)
    for label in set(labels.tolist()):
        assert len(set(components[labels == label].tolist())) == 1


def test_a_record_between_two_people_does_not_chain_them() -> None:
    # A-B and B-C link strongly, A and C are clearly different people.
    weights = np.array([[0, 20, -30], [20, 0, 19], [-30, 19, 0]], dtype=np.float64)
    labels = cluster(3, weights, 5.0)
    assert labels.tolist() == [0, 0, 2]
    assert connected_components(3, np.array([[0, 1], [1, 2]])).tolist() == [0, 0, 0]


def test_previous_ids_are_kept_by_the_cluster_holding_most_of_their_members() -> None:
    keys = ["a:1", "a:2", "b:1", "b:2"]
    previous = {"a:1": "E-old", "a:2": "E-old", "b:1": "E-old"}
    ids = entity_ids(np.array([0, 0, 2, 3]), keys, previous)
    assert ids[0] == ids[1] == "E-old"
    assert len({ids[2], ids[3], "E-old"}) == 3  # the split-off part gets a new, unused id
    # Without previous ids, a cluster is named by its smallest member key as before.
    assert entity_ids(np.array([0, 0, 2, 3]), keys)[0] != "E-old"


# --- incremental linking ------------------------------------------------------------------


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[EncodedCorpus, dict[str, str], list]:
    folder: Path = tmp_path_factory.mktemp("incremental")
    generated = generate_town(seed=6, people=400)
    person = {(agency, record): pid for agency, record, pid in generated.truth}
    context = context_without_policy(default_schema(), policy_id="inc", epoch=0)
    secret, batches, truth = new_secret(), [], {}
    for agency in AGENCIES:
        path = folder / f"{agency}.csv"
        write_canonical_csv(generated.canonical_rows[agency], path)
        pseudonyms = PseudonymMap()
        batches.append(
            (agency, encode_csv(path, secret=secret, context=context, pseudonyms=pseudonyms).batch)
        )
        for pseudonym, record in pseudonyms.record_for().items():
            truth[f"{agency}:{pseudonym}"] = person[(agency, record)]
    return build_corpus(batches), truth, batches


def test_a_new_batch_links_into_existing_entities_with_stable_ids(
    town: tuple[EncodedCorpus, dict[str, str], list],
) -> None:
    full, truth, batches = town
    earlier = build_corpus(batches[:-1])
    first = LocalEngine().link(earlier)
    previous = PreviousLinkage(
        {earlier.member_key(r): e for r, e in enumerate(first.entity_ids)}, first.model
    )
    later = LocalEngine().link(full, previous=previous)
    # Only pairs touching the new batch were compared.
    assert later.candidate_pairs < LocalEngine().link(full).candidate_pairs
    ids = {full.member_key(r): e for r, e in enumerate(later.entity_ids)}
    kept = sum(ids[k] == e for k, e in previous.entities.items())
    assert kept / len(previous.entities) >= 0.99
    quality = pairwise_quality(ids, truth)
    assert quality.f1 >= 0.97, quality
    # Nothing new: linking again with the same evidence changes no id at all.
    again = LocalEngine().link(full, previous=PreviousLinkage(ids, later.model))
    assert again.entity_ids == later.entity_ids
