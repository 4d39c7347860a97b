"""Lint findings: one problem of a policy file, with its code, line and fix.

Every code has one example policy in ``policies/examples/broken/<code>.yaml`` that triggers
it and nothing else (a test checks each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keys.errors import PolicyError
from policies.located import LocatedDocument, YamlPath

# code -> what it means; the fix is given per finding.
CODES: dict[str, str] = {
    "yaml-syntax": "the file is not valid YAML",
    "duplicate-key": "a key is written twice in one mapping (YAML keeps only the last)",
    "missing-key": "a required key is missing",
    "unknown-key": "a key the policy format does not define",
    "invalid-value": "a value has the wrong type or is not one of the allowed values",
    "duplicate-id": "two parties, data items, purposes or rules share an id",
    "no-purpose": "incomplete: no purpose",
    "no-lawful-basis": "incomplete: no UK GDPR article 6 lawful basis",
    "no-dpia": "incomplete: no DPIA reference and completion date",
    "no-retention": "incomplete: no retention periods",
    "no-security": "incomplete: no security measures",
    "no-review": "incomplete: no review date and owner",
    "expired": "out of date: expires_on has passed",
    "review-overdue": "out of date: the review date has passed",
    "unsigned": "a party's DPO has not approved this version",
    "bad-signature": "an approval does not verify, or its key is no party's DPO key",
    "undeclared-item": "a rule names a data item the policy does not declare",
    "unused-item": "a data item is declared as shared but no upload permission covers it",
    "undeclared-purpose": "a rule names a purpose the policy does not declare",
    "undeclared-assignee": "a rule's assignee is neither a party, a role nor 'any'",
    "special-category-without-condition": (
        "special-category data without an article 9 condition (and DPA 2018 schedule 1 "
        "where article 9 requires it)"
    ),
    "criminal-offence-without-basis": (
        "criminal-offence data without a DPA 2018 schedule 1 condition or part 3 basis"
    ),
    "permission-without-purpose": "a permission names no purpose",
    "overlapping-rules": "a permission and a prohibition cover the same request",
    "disclosure-floor": "disclosure control below the house floor (min_cell 8, rounding 5)",
    "no-tests": "no golden allow/deny tests",
    "failing-test": "a golden test's expected decision or deciding rules differ",
}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: where (file, line, path), which code, what, and the fix."""

    where: str
    line: int
    code: str
    path: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")

    def format(self) -> str:
        at = f" ({self.path})" if self.path else ""
        return f"{self.where}:{self.line}: [{self.code}]{at} {self.message}\n    fix: {self.fix}"


def path_text(path: YamlPath) -> str:
    """``('parties', 2, 'role')`` -> ``parties[2].role``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class FindingList:
    """Collects findings against one located document."""

    def __init__(self, located: LocatedDocument) -> None:
        self.located = located
        self.items: list[Finding] = []

    def add(self, code: str, path: YamlPath, message: str, fix: str) -> None:
        line = self.located.line(path)
        where = self.located.where
        self.items.append(Finding(where, line, code, path_text(path), message, fix))

    def sorted(self) -> list[Finding]:
        return sorted(set(self.items))


def raise_findings(findings: Sequence[Finding], where: str) -> None:
    """One :class:`PolicyError` that lists every finding, each with its line and fix."""
    if not findings:
        return
    lines = [
        f"line {f.line}: [{f.code}] {f.path + ': ' if f.path else ''}{f.message} (fix: {f.fix})"
        for f in findings
    ]
    noun = "problem" if len(findings) == 1 else "problems"
    raise PolicyError(
        f"{where}: {len(findings)} {noun}:\n  " + "\n  ".join(lines),
        fix="correct each line listed; `placelink policy lint FILE` shows the same list",
    )
