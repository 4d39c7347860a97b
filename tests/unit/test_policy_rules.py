"""Policy decisions: allow/deny tables on the example, and properties of any policy
(prohibition always wins, default deny, decisions deterministic and order-free); the policy
hash is invariant under YAML re-formatting; both sides' upload check."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import PolicyError
from policies.decisions import check_upload, require
from policies.located import parse_located
from policies.model import Policy, Request, Rule, parse_policy, policy_hash
from policies.rules import MemoryDecisionLog, covers, decide
from tests.policy_keys import EXAMPLE_POLICY, example_document

EXAMPLE = parse_policy(example_document())

TABLE = [
    # (party, action, data_item, by, allowed, deciding rules)
    ("police", "upload", "nhs_number", None, True, ("P1",)),
    ("health", "upload", "contact_month", None, True, ("P1",)),
    ("school", "upload", "area", None, True, ("P1",)),
    ("health", "upload", "ethnicity", None, False, ()),  # declared, dropped
    ("police", "upload", "offence_type", None, False, ()),  # declared, dropped
    ("police", "upload", "shoe_size", None, False, ()),  # undeclared
    ("task_force", "upload", "given_name", None, False, ()),  # not a provider
    ("linkage", "upload", "given_name", None, False, ()),
    ("linkage", "link", None, None, True, ("P2",)),
    ("police", "link", None, None, False, ()),
    ("linkage", "aggregate", None, "event_month", True, ("P3",)),
    ("task_force", "view_hotspots", None, "area", True, ("P4",)),
    ("recipient", "view_hotspots", None, "area", True, ("P4",)),  # by role
    ("task_force", "view_hotspots", None, "event_month", False, ()),
    ("task_force", "view_hotspots", None, None, False, ()),  # P4 needs a `by` within its list
    ("police", "view_hotspots", None, "area", False, ()),
    ("school", "view_links", None, None, True, ("P5",)),
    ("task_force", "view_links", None, None, False, ()),
    ("linkage", "view_records", None, None, False, ("X1",)),
    ("police", "view_records", None, None, False, ("X1",)),
    ("task_force", "reidentify", None, None, False, ("X2",)),
    ("task_force", "export", None, None, False, ("X3",)),
    ("stranger", "view_hotspots", None, "area", False, ()),
]


@pytest.mark.parametrize(("party", "action", "item", "by", "allowed", "rules"), TABLE)
def test_example_allow_deny_table(
    party: str, action: str, item: str | None, by: str | None, allowed: bool, rules: tuple[str, ...]
) -> None:
    decision = decide(EXAMPLE, Request(action, party, data_item=item, by=by))
    assert (decision.allowed, decision.rules) == (allowed, rules)
    assert decision.policy_id == "seabrook-task-force"
    assert decision.policy_hash == EXAMPLE.policy_hash
    assert decision.reason


# --- properties over generated policies ---------------------------------------------------

PARTIES = ("police", "health", "task_force", "linkage")
ROLE_OF = {"police": "provider", "health": "provider", "task_force": "recipient",
           "linkage": "linkage_service"}  # fmt: skip
ITEMS = ("given_name", "nhs_number", "area")
ACTIONS = ("upload", "view_hotspots", "view_records", "link")


def _rules(kind: str) -> st.SearchStrategy[list[Rule]]:
    rule = st.builds(
        lambda action, assignee, items, by, purpose: Rule(
            "?",
            kind,
            action,
            assignee,
            purpose,
            items,
            by,  # type: ignore[arg-type]
        ),
        st.sampled_from(ACTIONS),
        st.sampled_from((*PARTIES, "provider", "recipient", "any")),
        st.none() | st.lists(st.sampled_from(ITEMS), min_size=1, max_size=2).map(tuple),
        st.none() | st.lists(st.sampled_from(("area", "event_month")), min_size=1).map(tuple),
        st.none() | st.sampled_from(("hotspots", "other")),
    )
    return st.lists(rule, max_size=4)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    permissions = [
        dataclasses.replace(r, id=f"P{i}") for i, r in enumerate(draw(_rules("permission")))
    ]
    prohibitions = [
        dataclasses.replace(r, id=f"X{i}") for i, r in enumerate(draw(_rules("prohibition")))
    ]
    rules = draw(st.permutations(permissions + prohibitions))
    return dataclasses.replace(EXAMPLE, rules=tuple(rules))


REQUESTS = st.builds(
    Request,
    st.sampled_from(ACTIONS),
    st.sampled_from((*PARTIES, "recipient")),
    st.none() | st.sampled_from(ITEMS),
    st.none() | st.sampled_from(("area", "event_month")),
    st.none() | st.sampled_from(("hotspots", "other")),
)


@settings(max_examples=150, deadline=None)
@given(policy=policies(), request=REQUESTS)
def test_a_covering_prohibition_always_wins(policy: Policy, request: Request) -> None:
    decision = decide(policy, request)
    prohibitions = [
        r.id for r in policy.rules if r.kind == "prohibition" and covers(policy, r, request)
    ]
    permissions = [
        r.id for r in policy.rules if r.kind == "permission" and covers(policy, r, request)
    ]
    if prohibitions:
        assert not decision.allowed and set(decision.rules) == set(prohibitions)
    elif permissions and decision.reason.startswith("a permission"):
        assert decision.allowed and set(decision.rules) == set(permissions)
    else:
        assert not decision.allowed
    assert decision.allowed == (
        bool(permissions) and not prohibitions and decision.reason.startswith("a permission")
    )


@settings(max_examples=120, deadline=None)
@given(policy=policies(), request=REQUESTS, data=st.data())
def test_decisions_are_deterministic_and_free_of_rule_order(
    policy: Policy, request: Request, data: st.DataObject
) -> None:
    shuffled = dataclasses.replace(policy, rules=tuple(data.draw(st.permutations(policy.rules))))
    first, again, other = (
        decide(policy, request),
        decide(policy, request),
        decide(shuffled, request),
    )
    assert first == again
    assert (first.allowed, set(first.rules)) == (other.allowed, set(other.rules))


@settings(max_examples=200, deadline=None)
@given(request=REQUESTS)
def test_a_policy_without_permissions_allows_nothing(request: Request) -> None:
    policy = dataclasses.replace(EXAMPLE, rules=EXAMPLE.rules_of("prohibition"))
    assert not decide(policy, request).allowed


def test_a_request_that_leaves_out_a_restricted_value_is_denied_either_way() -> None:
    permission = Rule("P", "permission", "upload", "any", data_items=("sex",), by=("area",))
    prohibition = dataclasses.replace(permission, id="X", kind="prohibition")
    vague = Request("upload", "police")
    assert not covers(EXAMPLE, permission, vague)
    assert covers(EXAMPLE, prohibition, vague)
    exact = Request("upload", "police", data_item="sex", by="area")
    assert covers(EXAMPLE, permission, exact) and covers(EXAMPLE, prohibition, exact)


def test_assignee_matches_party_id_role_or_any() -> None:
    rule = Rule("R", "permission", "link", "provider")
    assert covers(EXAMPLE, rule, Request("link", "police"))
    assert covers(EXAMPLE, rule, Request("link", "provider"))
    assert not covers(EXAMPLE, rule, Request("link", "linkage"))
    assert covers(EXAMPLE, dataclasses.replace(rule, assignee="any"), Request("link", "x"))
    assert covers(EXAMPLE, dataclasses.replace(rule, assignee="police"), Request("link", "police"))


# --- the hash ------------------------------------------------------------------------------

YAML_STYLES = [
    {"default_flow_style": True},
    {"default_flow_style": False, "sort_keys": True},
    {"default_flow_style": None, "indent": 4, "width": 40},
    {
        "default_flow_style": False,
        "sort_keys": False,
        "allow_unicode": True,
        "explicit_start": True,
    },
]


@pytest.mark.parametrize("style", YAML_STYLES)
def test_policy_hash_is_invariant_under_yaml_reformatting(style: dict[str, Any]) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    reformatted = yaml.safe_dump(yaml.safe_load(text), **style)
    located = parse_located(reformatted, where="reformatted")
    assert policy_hash(located.value) == EXAMPLE.policy_hash
    assert parse_located(text, where="original").value == yaml.safe_load(text)


@settings(max_examples=50, deadline=None)
@given(
    comment=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    blank_lines=st.integers(0, 3),
)
def test_policy_hash_ignores_comments_and_blank_lines(comment: str, blank_lines: int) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    edited = text.replace("parties:\n", f"# {comment}\n" + "\n" * blank_lines + "parties:\n")
    assert policy_hash(parse_located(edited, where="x").value) == EXAMPLE.policy_hash


def test_policy_hash_changes_with_a_rule() -> None:
    document = copy.deepcopy(example_document())
    document["prohibitions"][0]["assignee"] = "recipient"
    assert policy_hash(document) != EXAMPLE.policy_hash


# --- enforcement on both sides -------------------------------------------------------------

ENCODED = ["given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number"]


def test_check_upload_records_one_decision_per_field_and_attribute() -> None:
    log = MemoryDecisionLog()
    decisions = check_upload(EXAMPLE, party="police", fields=ENCODED,
                             attributes=["area", "event_month"], recorder=log)  # fmt: skip
    assert len(decisions) == len(log.decisions) == 9
    assert all(d.allowed and d.rules == ("P1",) for d in decisions)
    assert {d.request.data_item for d in decisions} >= {"nhs_number", "contact_month", "area"}
    assert all(d.policy_hash == EXAMPLE.policy_hash for d in log.decisions)


@pytest.mark.parametrize(
    ("party", "fields", "attributes", "message"),
    [
        ("police", ["ethnicity"], [], "names no data item for the encoded field 'ethnicity'"),
        ("police", ["given_name"], ["postcode"], "names no data item for the attribute"),
        ("police", ["event_date"], [], "encoded field 'event_date'"),  # only generalised
        ("task_force", ["given_name"], [], "no permission covers it"),
    ],
)
def test_check_upload_refuses_what_the_policy_does_not_name(
    party: str, fields: list[str], attributes: list[str], message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        check_upload(EXAMPLE, party=party, fields=fields, attributes=attributes)
    assert caught.value.fix


def test_require_raises_with_the_deciding_rules_and_records_the_denial() -> None:
    log = MemoryDecisionLog()
    with pytest.raises(PolicyError, match=r"prohibition wins\) \(rules: X1\)"):
        require(EXAMPLE, Request("view_records", "task_force"), recorder=log)
    (decision,) = log.decisions
    assert not decision.allowed and decision.rules == ("X1",)


def test_the_default_decision_log_is_bounded() -> None:
    log = MemoryDecisionLog(limit=3)
    for party in ("police", "health", "school", "housing", "linkage"):
        log.record(decide(EXAMPLE, Request("link", party)))
    assert [d.request.party for d in log.decisions] == ["school", "housing", "linkage"]
