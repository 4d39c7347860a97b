"""``placelink policy explain``: the policy as a plain-English data-sharing summary a DPO can
read and file: who shares what with whom, why, on which basis, in which form, for how long,
with which safeguards. Built once as sections, rendered as Markdown or as one self-contained
HTML page (:mod:`policies.explain_render`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from policies.approvals import verify_approvals
from policies.golden import run_golden_tests
from policies.model import DataItem, Policy, Rule
from policies.rules import Decision
from policies.vocabulary import ACTIONS

ROLE_WORDS = {
    "provider": "shares data",
    "recipient": "receives aggregate results",
    "linkage_service": "links the encoded records",
}
CATEGORY_WORDS = {
    "personal": "personal data",
    "special": "special-category data (UK GDPR art. 9)",
    "criminal_offence": "criminal-offence data (UK GDPR art. 10)",
}
GENERALISATION_WORDS = {
    "postcode_sector": "postcode sector (e.g. SB3 2)",
    "postcode_district": "postcode district (e.g. SB3)",
    "month": "month (e.g. 2026-05)",
    "year": "year",
    "flag": "a yes/no flag",
}
_PERIOD = re.compile(r"(\d+)([YMWD])")
_UNITS = {"Y": "year", "M": "month", "W": "week", "D": "day"}


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: tuple[str, ...] = ()
    rows: Sequence[Sequence[str]] = field(default_factory=list)


def period_words(period: str) -> str:
    """``P13M`` -> ``13 months``."""
    parts = [
        f"{n} {_UNITS[u]}{'s' if n != '1' else ''}" for n, u in _PERIOD.findall(period.upper())
    ]
    return ", ".join(parts) or period


def form_words(item: DataItem) -> str:
    if item.transform == "encode":
        return "keyed encoding only (never in clear)"
    if item.transform == "generalise":
        level = GENERALISATION_WORDS.get(item.generalisation or "", item.generalisation)
        return f"generalised to {level}, sent as '{item.attribute}'"
    return "never shared"


_WHO = {
    "any": "Every party",
    "provider": "Each provider",
    "recipient": "Each recipient",
    "linkage_service": "The linkage service",
}


def rule_words(rule: Rule) -> str:
    who = _WHO.get(rule.assignee, rule.assignee)
    verb = {"permission": "may", "prohibition": "may not", "obligation": "must"}[rule.kind]
    if rule.kind == "prohibition" and rule.assignee == "any":
        who, verb = "Nobody", "may"
    text = f"{who} {verb} {ACTIONS.get(rule.action, rule.action)}"
    if rule.data_items is not None:
        text += f" (data items: {', '.join(rule.data_items)})"
    if rule.by is not None:
        text += f" (grouped only by: {', '.join(rule.by)})"
    if rule.purpose:
        text += f", for the purpose '{rule.purpose}'"
    return text + (f". {rule.description.strip()}" if rule.description else "")


def _overview(policy: Policy) -> Section:
    return Section(
        policy.title,
        [
            policy.summary.strip(),
            f"Policy {policy.policy_id}, version {policy.version}, status {policy.status}; in "
            f"force from {policy.effective_from.isoformat()} to {policy.expires_on.isoformat()}.",
            f"Version hash (SHA-256, what each DPO signs): {policy.policy_hash}",
        ],
    )


def _who(policy: Policy) -> Section:
    report = verify_approvals(policy)
    rows = [
        (
            p.organisation or p.id,
            f"{p.id}: {ROLE_WORDS.get(p.role, p.role)}",
            p.dpo or "-",
            "approved"
            if p.id in report.approved
            else ("NOT approved" if p.id in report.missing else "not required"),
        )
        for p in policy.parties
    ]
    return Section(
        "Who shares with whom",
        [
            "Providers send only keyed encodings and generalised attributes to the linkage "
            "service; recipients see disclosure-controlled counts, never records."
        ],
        ("organisation", "party and role", "DPO contact", "approval of this version"),
        rows,
    )


def _why(policy: Policy) -> Section:
    basis = policy.document.get("lawful_basis") or {}
    labels = {
        "article_6": "UK GDPR article 6",
        "article_9": "UK GDPR article 9",
        "schedule_1": "DPA 2018 schedule 1",
        "part_3": "DPA 2018 part 3",
    }
    dpia = policy.document.get("dpia") or {}
    paragraphs = [f"Purpose '{p.id}': {p.description.strip()}" for p in policy.purposes]
    paragraphs += [f"{labels.get(k, k)}: {v}" for k, v in basis.items()]
    paragraphs.append(f"DPIA {dpia.get('reference', '(none)')}, completed {dpia.get('completed')}")
    return Section("Why, and on which lawful basis", paragraphs)


def _what(policy: Policy) -> Section:
    rows = [
        (i.id, CATEGORY_WORDS.get(i.category, i.category), form_words(i), i.description.strip())
        for i in policy.data_items
    ]
    header = ("data item", "category", "form", "note")
    note = (
        "A keyed encoding is a Bloom filter or token made with a secret only the agencies hold: "
        "the linkage service can compare encodings, not read or reverse them."
    )
    return Section("What is shared, and in which form", [note], header, rows)


def _rules(policy: Policy) -> Section:
    rows = [(r.id, r.kind, rule_words(r)) for r in policy.rules]
    note = (
        "Anything not permitted is refused. If a permission and a prohibition both apply, "
        "the prohibition wins."
    )
    return Section(
        "What is allowed, forbidden and required", [note], ("rule", "kind", "meaning"), rows
    )


def _safeguards(policy: Policy) -> Section:
    control = policy.disclosure
    paragraphs = [
        f"Published counts: 0 stays 0, 1 to {control.min_cell - 1} are suppressed (shown as *), "
        f"others are rounded to the nearest {control.rounding}."
    ]
    if control.epsilon_per_query is not None:
        paragraphs.append(
            f"Differential privacy: epsilon {control.epsilon_per_query} per "
            f"query, {control.epsilon_total} in total."
        )
    security = policy.document.get("security") or {}
    paragraphs += [f"{k.capitalize()}: {v}" for k, v in security.items()]
    retention = policy.document.get("retention") or {}
    rows = [(str(k), period_words(str(v))) for k, v in retention.items()]
    return Section("Safeguards, and how long data is kept", paragraphs, ("data", "kept for"), rows)


def _tests(policy: Policy) -> Section:
    rows = [
        (
            r.test.name,
            r.test.expect,
            ", ".join(r.decision.rules) or "-",
            "ok" if r.passed else "FAILS",
        )
        for r in run_golden_tests(policy)
    ]
    return Section("Golden tests", [], ("case", "expected", "decided by", "result"), rows)


def explain_policy(policy: Policy, *, today: dt.date) -> list[Section]:
    """The summary, section by section."""
    sections = [_overview(policy), _who(policy), _why(policy), _what(policy), _rules(policy)]
    sections += [_safeguards(policy), _tests(policy)]
    if policy.expires_on < today:
        sections[0].paragraphs.insert(0, "WARNING: this policy has expired.")
    return sections


def explain_decision(policy: Policy, decision: Decision) -> str:
    """One request's decision in words, with the rules that decided it."""
    request = decision.request
    parts = [f"{request.party} {request.action}"]
    parts += [f"data item {request.data_item}"] if request.data_item else []
    parts += [f"by {request.by}"] if request.by else []
    lines = [f"{decision.outcome.upper()}: {', '.join(parts)}: {decision.reason}."]
    by_id = {rule.id: rule for rule in policy.rules}
    lines += [
        f"  {rule_id} ({by_id[rule_id].kind}): {rule_words(by_id[rule_id])}"
        for rule_id in decision.rules
    ]
    lines.append(f"policy {policy.policy_id} {policy.version}, hash {policy.policy_hash}")
    return "\n".join(lines)
