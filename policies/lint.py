"""``placelink policy lint``: every problem of a policy file, each with its line and fix.

Structure first (:mod:`policies.validate`); then, on a structurally valid policy, the checks of
this module: incomplete, out of date, unsigned or wrongly signed, inconsistent, failing golden
tests. The codes are listed in :data:`policies.findings.CODES`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from keys.errors import PolicyError
from policies.approvals import verify_approvals
from policies.findings import Finding, FindingList
from policies.golden import run_golden_tests
from policies.located import LocatedDocument, load_located
from policies.model import Policy, policy_from_located
from policies.overlap import lint_consistency
from policies.validate import validate_structure

_INCOMPLETE = (
    ("no-purpose", ("purpose",), "state at least one purpose (id and description)"),
    ("no-lawful-basis", ("lawful_basis", "article_6"), "name the UK GDPR article 6 basis"),
    ("no-dpia", ("dpia", "reference"), "give the DPIA's reference and completion date"),
    ("no-dpia", ("dpia", "completed"), "give the DPIA's reference and completion date"),
    ("no-retention", ("retention",), "give a retention period per kind of data, e.g. P13M"),
    ("no-security", ("security",), "describe transport, encoding and storage safeguards"),
    ("no-review", ("review", "next_review"), "set review.next_review and review.owner"),
    ("no-review", ("review", "owner"), "set review.next_review and review.owner"),
)


def _empty(document: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = document
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value in (None, "", [], {})


def _incomplete(findings: FindingList, document: dict[str, Any]) -> None:
    reported: set[str] = set()
    for code, path, fix in _INCOMPLETE:
        if code not in reported and _empty(document, path):
            findings.add(code, path[:1], f"the policy has no {' '.join(path)}", fix)
            reported.add(code)


def _out_of_date(findings: FindingList, policy: Policy, today: dt.date) -> None:
    if policy.expires_on < today:
        findings.add(
            "expired",
            ("expires_on",),
            f"expired on {policy.expires_on.isoformat()}",
            "publish a new version with new dates, and have every DPO sign it",
        )
    raw = (policy.document.get("review") or {}).get("next_review")
    review = dt.date.fromisoformat(raw) if isinstance(raw, str) else raw
    if isinstance(review, dt.date) and review < today:
        findings.add(
            "review-overdue",
            ("review", "next_review"),
            f"review was due {review.isoformat()}",
            "review the agreement, then set the next review date in a new signed version",
        )


def _signatures(findings: FindingList, policy: Policy) -> None:
    report = verify_approvals(policy)
    for index, problem in report.bad:
        fix = "remove it and sign again with `placelink policy sign FILE --key KEY`"
        findings.add("bad-signature", ("approvals", index), f"approval {problem}", fix)
    for party_id in report.missing:
        index = next(i for i, p in enumerate(policy.parties) if p.id == party_id)
        has_key = policy.parties[index].dpo_key
        message = f"party {party_id!r}: its DPO has not approved this version"
        fix = "the DPO runs `placelink policy sign FILE --key KEY`"
        if not has_key:
            message, fix = f"party {party_id!r} names no dpo_key", "add the DPO's key fingerprint"
        findings.add("unsigned", ("parties", index), message, fix)


def _golden(findings: FindingList, policy: Policy) -> None:
    if not policy.tests:
        findings.add(
            "no-tests",
            ("tests",),
            "the policy has no golden tests",
            "add allow and deny cases with the rule ids expected to decide them",
        )
    for result in run_golden_tests(policy):
        if not result.passed:
            findings.add(
                "failing-test",
                ("tests", result.index),
                result.describe().removeprefix("FAIL "),
                "correct the rules, or the test if the rules say what was meant",
            )


def lint_located(located: LocatedDocument, *, today: dt.date) -> list[Finding]:
    """Every finding of one located document."""
    findings = FindingList(located)
    validate_structure(findings)
    if not isinstance(located.value, dict):
        return findings.sorted()
    _incomplete(findings, located.value)
    if findings.items and any(f.code not in _SEMANTIC for f in findings.items):
        return findings.sorted()
    policy = policy_from_located(located)
    _out_of_date(findings, policy, today)
    _signatures(findings, policy)
    lint_consistency(findings, policy)
    _golden(findings, policy)
    return findings.sorted()


_SEMANTIC = {code for code, _, _ in _INCOMPLETE}


def lint_file(path: Path, *, today: dt.date) -> list[Finding]:
    """Lint a file; a file that is not YAML at all is one ``yaml-syntax`` finding."""
    try:
        located = load_located(path)
    except PolicyError as exc:
        line = _line_of(exc.message)
        return [Finding(str(path), line, "yaml-syntax", "", exc.message, exc.fix)]
    return lint_located(located, today=today)


def _line_of(message: str) -> int:
    marker = message.find(": line ")
    if marker < 0:
        return 1
    digits = message[marker + 7 :].split(":")[0]
    return int(digits) if digits.isdigit() else 1
