"""The hot-spot desk (linkage.hotspot_desk): query checks as allow/deny tables, the published
answer, differencing refusals, the privacy budget with OpenDP noise, and the audit entry every
query leaves (answered or refused)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keys.errors import InputError, PolicyError
from linkage.disclosure import SUPPRESSED, Treatment
from linkage.hotspot_desk import HotspotDesk, PrivacyBudgetSpent
from linkage.privacy import add_noise, privacy_budget
from linkage.storage import Store
from placelink.entities import linked_records
from policies.model import Policy, parse_policy
from tests.hotspot_world import POLICY_ID, policy_document, write_policy

ANALYST, OTHER = "analyst:0001", "analyst:0002"


def desk_for(tmp_path: Path, records: Any, **disclosure: Any) -> tuple[HotspotDesk, Policy]:
    _, policy = write_policy(tmp_path, **disclosure)
    store = Store(f"sqlite:///{tmp_path / 'linkage.db'}")
    store.load_linked_records(POLICY_ID, records)
    return HotspotDesk(store, {POLICY_ID: policy}), policy


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[HotspotDesk, Policy]:
    return desk_for(tmp_path_factory.mktemp("desk"), linked_records(3000, seed=3))


def published_ok(value: Any) -> bool:
    return value == 0 or value == SUPPRESSED or (isinstance(value, int) and value % 5 == 0)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"kind": "map"}, InputError),
        ({"by": "postcode"}, PolicyError),
        ({"filter": {"min_agencies": 0}}, InputError),
        ({"filter": {"min_agencies": 6}}, InputError),
        ({"filter": {"min_agencies": True}}, InputError),
        ({"filter": {"all_of": ["probation"]}}, PolicyError),
        ({"filter": {"all_of": ["police"], "none_of": ["police"]}}, InputError),
        ({"filter": {"flags": ["ethnicity"]}}, PolicyError),
        ({"filter": {"since": "2025-13"}}, InputError),
        ({"filter": {"since": "2026-01", "until": "2025-01"}}, InputError),
        ({"filter": []}, InputError),
        ({"measures": []}, InputError),
        ({"measures": [{"name": "area"}]}, InputError),
        ({"measures": [{"name": "a"}, {"name": "a"}]}, InputError),
        ({"measures": [{"name": "a", "since": "2025-01"}]}, InputError),
        ({"kind": "trend", "measures": [{"name": "a"}]}, InputError),
        ([], InputError),
    ],
)
def test_malformed_or_forbidden_queries_are_refused_and_recorded(
    world: tuple[HotspotDesk, Policy], query: Any, error: type[Exception]
) -> None:
    desk, policy = world
    before = len(desk.store.queries(POLICY_ID))
    with pytest.raises(error):
        desk.answer(ANALYST, POLICY_ID, query)
    entries = desk.store.queries(POLICY_ID)
    assert len(entries) == before + 1
    last = entries[-1]
    assert (last.decision, last.analyst, last.policy_hash) == (
        "refused",
        ANALYST,
        policy.policy_hash,
    )
    assert last.reason and last.epsilon == 0


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"filter": {"min_agencies": 3}},
        {"filter": {"all_of": ["police", "childrens_services"]}},
        {"filter": {"all_of": ["housing"], "none_of": ["health"]}},
        {"filter": {"flags": ["asb_incident"], "since": "2025-01", "until": "2025-12"}},
        {"kind": "trend", "filter": {"min_agencies": 2}},
        {"kind": "cooccurrence", "filter": {"min_agencies": 2}},
    ],
)
def test_allowed_queries_publish_controlled_figures_and_are_recorded(
    world: tuple[HotspotDesk, Policy], query: dict[str, Any]
) -> None:
    desk, policy = world
    answer = desk.answer(ANALYST, POLICY_ID, query)
    body = answer.to_json()
    assert body["policy_hash"] == policy.policy_hash and body["query_id"]
    for row, treatments in zip(body["rows"], body["treatments"], strict=True):
        for column in body["columns"]:
            assert published_ok(row[column])
            assert treatments[column] in {t.value for t in Treatment}
    entry = desk.store.queries(POLICY_ID)[-1]
    assert (entry.id, entry.decision, entry.epsilon) == (answer.query_id, "answered", 0.0)
    assert entry.query == answer.query.canonical()
    assert entry.treatments == answer.treatment_counts()


def test_a_table_has_a_protected_total_row(world: tuple[HotspotDesk, Policy]) -> None:
    desk, _ = world
    body = desk.answer(ANALYST, POLICY_ID, {"filter": {"min_agencies": 2}}).to_json()
    assert body["total"]["area"] == "all areas" and published_ok(body["total"]["entities"])
    column = [row["entities"] for row in body["rows"]] + [body["total"]["entities"]]
    assert column.count(SUPPRESSED) != 1


def tiny_world() -> list[list[tuple[str, str, dict[str, Any]]]]:
    """SB1 1: 20 people known to police and health, 3 of whom housing knows too."""
    records = []
    for i in range(20):
        for agency in ("police", "health", *(("housing",) if i < 3 else ())):
            records.append((f"P{i}", agency, {"area": "SB1 1", "event_month": "2025-01"}))
    for i in range(30):
        records.append((f"Q{i}", "police", {"area": "SB1 2", "event_month": "2025-02"}))
    return [records]


def test_a_query_differing_by_a_few_people_has_those_cells_refused(tmp_path: Path) -> None:
    desk, _ = desk_for(tmp_path, tiny_world())
    first = desk.answer(ANALYST, POLICY_ID, {"filter": {"all_of": ["police"]}})
    assert first.cells[("SB1 1", "entities")].value == 20
    second = desk.answer(
        ANALYST, POLICY_ID, {"filter": {"all_of": ["police"], "none_of": ["housing"]}}
    )
    cell = second.cells[("SB1 1", "entities")]
    assert (cell.value, cell.treatment) == (SUPPRESSED, Treatment.DIFFERENCING)
    assert second.total is not None and second.total["entities"].value == SUPPRESSED
    assert second.cells[("SB1 2", "entities")].value == 30  # the same 30 people: no difference
    # the same query again differs from nothing by a few: identical populations are fine
    again = desk.answer(ANALYST, POLICY_ID, {"filter": {"all_of": ["police"]}})
    assert again.cells[("SB1 1", "entities")].treatment == Treatment.DIFFERENCING  # vs second
    # within one table, two columns differing by a few people are refused the same way
    table = desk.answer(
        OTHER, POLICY_ID,
        {"measures": [{"name": "police", "all_of": ["police"]},
                      {"name": "not_housing", "all_of": ["police"], "none_of": ["housing"]}]},
    )  # fmt: skip
    assert table.cells[("SB1 1", "not_housing")].treatment == Treatment.DIFFERENCING


def test_under_a_budget_each_query_spends_epsilon_until_refused(tmp_path: Path) -> None:
    desk, _ = desk_for(
        tmp_path, linked_records(2000, seed=5), epsilon_per_query=1.0, epsilon_total=2.5
    )
    for spent in (1.0, 2.0):
        answer = desk.answer(ANALYST, POLICY_ID, {"filter": {"min_agencies": 2}})
        assert answer.budget is not None
        assert (answer.budget["epsilon_spent"], answer.budget["epsilon_remaining"]) == (
            spent,
            2.5 - spent,
        )
        noise = answer.to_json()["disclosure"]["noise"]
        assert noise["epsilon"] == 1.0 and noise["scale"] == 1.0 and "OpenDP" in noise["mechanism"]
        assert all(published_ok(c.value) for c in answer.cells.values())
    with pytest.raises(PrivacyBudgetSpent):
        desk.answer(ANALYST, POLICY_ID, {"kind": "cooccurrence"})
    assert desk.store.epsilon_spent(ANALYST, POLICY_ID) == 2.0
    assert desk.store.queries(POLICY_ID)[-1].decision == "refused"
    assert desk.answer(OTHER, POLICY_ID, {}).budget is not None  # budgets are per analyst


@pytest.mark.parametrize(
    ("disclosure", "allowed"),
    [
        ({}, True),
        ({"epsilon_per_query": 0.5, "epsilon_total": 5}, True),
        ({"epsilon_per_query": 0.5}, False),
        ({"epsilon_total": 5}, False),
        ({"epsilon_per_query": 0, "epsilon_total": 5}, False),
        ({"epsilon_per_query": -1, "epsilon_total": 5}, False),
        ({"epsilon_per_query": "lots", "epsilon_total": 5}, False),
        ({"epsilon_per_query": True, "epsilon_total": 5}, False),
        ({"epsilon_per_query": 6, "epsilon_total": 5}, False),
    ],
)
def test_privacy_budget_terms(disclosure: dict[str, Any], allowed: bool) -> None:
    """Bad budget terms are refused when the policy loads (policies.model) or, at the latest,
    when the desk reads the budget."""
    if allowed:
        privacy_budget(parse_policy(policy_document(**disclosure)))
    else:
        with pytest.raises(PolicyError):
            privacy_budget(parse_policy(policy_document(**disclosure)))


def test_opendp_noise_is_centred_with_the_calibrated_spread() -> None:
    counts = np.full(20_000, 100, dtype=np.int64)
    noisy = add_noise(counts, sensitivity=2, epsilon=1.0)  # scale 2: variance ~ 2 * 2**2
    assert abs(float(noisy.mean()) - 100) < 0.2
    assert 6.0 < float(noisy.var()) < 10.0
    assert (add_noise(np.zeros(50, dtype=np.int64), sensitivity=1, epsilon=1.0) >= 0).all()


def test_a_policy_out_of_force_answers_nothing(tmp_path: Path) -> None:
    desk, _ = desk_for(tmp_path, tiny_world())
    with pytest.raises(PolicyError):
        desk.answer(ANALYST, POLICY_ID, {}, today=dt.date.today() + dt.timedelta(days=400))
    with pytest.raises(PolicyError):
        desk.answer(ANALYST, "no-such-policy", {})
    assert [q.decision for q in desk.store.queries(POLICY_ID)] == ["refused"]


def test_the_audit_seam_sees_every_decision(tmp_path: Path) -> None:
    desk, _ = desk_for(tmp_path, tiny_world())
    seen: list[dict[str, Any]] = []
    desk.store.on_query.append(lambda entry: seen.append(entry.audit_record()))
    desk.answer(ANALYST, POLICY_ID, {})
    with pytest.raises(PolicyError):
        desk.answer(ANALYST, POLICY_ID, {"filter": {"all_of": ["probation"]}})
    assert [e["decision"] for e in seen] == ["answered", "refused"]
    assert {"analyst", "policy_hash", "policy_version", "query", "epsilon"} <= set(seen[0])


def test_a_new_link_run_is_answered_from_a_fresh_index(tmp_path: Path) -> None:
    desk, _ = desk_for(tmp_path, tiny_world())
    first = desk.answer(ANALYST, POLICY_ID, {})
    assert first.cells[("SB1 2", "entities")].value == 30
    more = [[(f"R{i}", "housing", {"area": "SB1 2", "event_month": "2025-03"}) for i in range(40)]]
    desk.store.load_linked_records(POLICY_ID, more)  # a new run: only these 40 people
    second = desk.answer(OTHER, POLICY_ID, {})
    assert second.link_run != first.link_run
    assert second.cells[("SB1 2", "entities")].value == 40
    assert second.total is not None and second.total["entities"].value == 40


def test_the_policy_rule_hook_decides_before_any_count(tmp_path: Path) -> None:
    _, policy = write_policy(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'linkage.db'}")
    store.load_linked_records(POLICY_ID, tiny_world())
    asked: list[str] = []

    def refuse(policy: Policy, by: str) -> None:
        asked.append(by)
        raise PolicyError("analysts may not view hot-spots by this attribute", fix="see P3")

    desk = HotspotDesk(store, {POLICY_ID: policy}, authorise=refuse)
    with pytest.raises(PolicyError):
        desk.answer(ANALYST, POLICY_ID, {})
    assert asked == ["area"]
    assert [(q.decision, q.epsilon) for q in store.queries(POLICY_ID)] == [("refused", 0.0)]
