"""The broken example policies: one per lint finding, each the shipped example with one fault.

``python -m tests.policy_broken`` re-signs ``policies/examples/task-force.yaml`` with the
example DPO keys and rewrites ``policies/examples/broken/``; a test checks the committed files
are what this produces, and that each triggers its finding and nothing else (as of ``TODAY``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from policies.approval_file import replace_approvals
from policies.approvals import make_approval
from policies.findings import CODES
from policies.located import parse_located
from policies.model import policy_from_located
from tests.policy_keys import EXAMPLE_POLICY, example_dpo_keys, example_key

BROKEN = EXAMPLE_POLICY.parent / "broken"
TODAY = dt.date(2026, 11, 1)  # the day the examples are linted as of
Edit = Callable[[str], str]


def _sub(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _drop_line(prefix: str) -> Edit:
    """Remove the first line that starts with ``prefix``."""

    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        return "".join(lines[:index] + lines[index + 1 :])

    return edit


def _chain(*edits: Edit) -> Edit:
    def edit(text: str) -> str:
        for step in edits:
            text = step(text)
        return text

    return edit


def _block(key: str, replacement: str) -> Edit:
    """Replace a whole top-level block (its key line to the next top-level key)."""

    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        following = range(start + 1, len(lines))
        end = next((i for i in following if lines[i][:1].isalpha()), len(lines))
        return "".join([*lines[:start], replacement, *lines[end:]])

    return edit


def _stale_police_approval(text: str) -> str:
    """An extra police-DPO approval of an older version: it does not verify over this one."""
    older = _resign(text.replace('version: "1.0"', 'version: "0.9"'))
    policy = policy_from_located(parse_located(older, where="older"))
    stale = make_approval(policy, example_key("police-dpo"))
    current = policy_from_located(parse_located(text, where="current"))
    approvals = [*current.document["approvals"], stale]
    return replace_approvals(parse_located(text, where="current"), approvals)


def _drop_police_approval(text: str) -> str:
    located = parse_located(text, where="current")
    police = example_key("police-dpo").fingerprint
    kept = [a for a in located.value["approvals"] if a["key"] != police]
    return replace_approvals(located, kept)


ALL_ITEMS_BUT_ADDRESS = (
    "[given_name, family_name, date_of_birth, sex, postcode, nhs_number, area, contact_month]"
)
# code -> (what is wrong, the edit, whether to re-sign the edited text)
EXAMPLES: dict[str, tuple[str, Edit, bool]] = {
    "yaml-syntax": ("an unclosed bracket", _sub("status: active", "status: [active"), False),
    "duplicate-key": (
        "status written twice",
        _sub("status: active\n", "status: active\nstatus: draft\n"),
        False,
    ),
    "missing-key": ("no title", _drop_line("title:"), False),
    "unknown-key": (
        "a key the format does not define",
        _sub("dpia:\n", "notes: shared drive\ndpia:\n"),
        False,
    ),
    "invalid-value": (
        "a transform that does not exist",
        _sub(
            "category: personal, transform: encode}\n  - {id: family_name",
            "category: personal, transform: send}\n  - {id: family_name",
        ),
        False,
    ),
    "duplicate-id": ("two rules called P1", _sub("{id: P2,", "{id: P1,"), False),
    "no-purpose": ("no purpose", _block("purpose", "purpose: []\n"), True),
    "no-lawful-basis": ("no article 6 basis", _drop_line("  article_6:"), True),
    "no-dpia": ("no DPIA reference", _sub("  reference: DPIA-SCSP-2026-04\n", ""), True),
    "no-retention": ("no retention", _block("retention", "retention: {}\n"), True),
    "no-security": ("no security measures", _block("security", "security: {}\n"), True),
    "no-review": (
        "no review owner",
        _sub("  owner: Seabrook Community Safety Partnership information governance group\n", ""),
        True,
    ),
    "expired": (
        "expires_on is before that day",
        _sub("expires_on: 2027-12-31", "expires_on: 2026-10-31"),
        True,
    ),
    "review-overdue": (
        "review was due before that day",
        _sub("next_review: 2027-06-30", "next_review: 2026-09-30"),
        True,
    ),
    "unsigned": ("the police DPO has not signed", _drop_police_approval, False),
    "bad-signature": ("a stale approval of version 0.9", _stale_police_approval, False),
    "undeclared-item": (
        "X1 names an undeclared item",
        _sub(
            "{id: X1, action: view_records, assignee: any,",
            "{id: X1, action: view_records, assignee: any, data_items: [case_notes],",
        ),
        True,
    ),
    "unused-item": (
        "address is declared, no permission uses it",
        _sub("data_items: all", f"data_items: {ALL_ITEMS_BUT_ADDRESS}"),
        True,
    ),
    "undeclared-purpose": (
        "P2's purpose is not declared",
        _sub(
            "{id: P2, action: link, assignee: linkage_service, purpose: hotspots}",
            "{id: P2, action: link, assignee: linkage_service, purpose: case_management}",
        ),
        True,
    ),
    "undeclared-assignee": (
        "P2's assignee is no party or role",
        _sub(
            "{id: P2, action: link, assignee: linkage_service,",
            "{id: P2, action: link, assignee: analysts,",
        ),
        True,
    ),
    "special-category-without-condition": (
        "no article 9 condition (nor part 3)",
        _chain(_drop_line("  article_9:"), _drop_line("  part_3:")),
        True,
    ),
    "criminal-offence-without-basis": (
        "contact month as criminal-offence data, no schedule 1 or part 3",
        _chain(
            _sub(
                "    category: special\n    transform: generalise",
                "    category: criminal_offence\n    transform: generalise",
            ),
            _drop_line("  schedule_1:"),
            _drop_line("  part_3:"),
        ),
        True,
    ),
    "permission-without-purpose": (
        "P2 has no purpose",
        _sub(
            "{id: P2, action: link, assignee: linkage_service, purpose: hotspots}",
            "{id: P2, action: link, assignee: linkage_service}",
        ),
        True,
    ),
    "overlapping-rules": (
        "X4 forbids what P3 allows",
        _sub(
            "  - {id: X3, action: export, assignee: any}\n",
            "  - {id: X3, action: export, assignee: any}\n"
            "  - {id: X4, action: aggregate, assignee: linkage_service,\n"
            "     constraints: {by: [event_month]}}\n",
        ),
        True,
    ),
    "disclosure-floor": ("min_cell 5", _sub("min_cell: 8", "min_cell: 5"), False),
    "no-tests": ("no golden tests", _block("tests", "tests: []\n"), True),
    "failing-test": (
        "a case expecting the wrong rule",
        _sub("    expect: allow\n    rules: [P4]", "    expect: allow\n    rules: [P3]"),
        True,
    ),
}


def _resign(text: str) -> str:
    located = parse_located(text, where="example")
    policy = policy_from_located(located)
    approvals = [make_approval(policy, key) for key in example_dpo_keys().values()]
    return replace_approvals(located, approvals)


def _header(code: str, what: str) -> str:
    return (
        f"# BROKEN ON PURPOSE: triggers the lint finding `{code}` and nothing else\n"
        f"# (as of {TODAY.isoformat()}): {what}.\n# The finding means: {CODES[code]}.\n"
        "# The shipped example with one fault; regenerate with `python -m tests.policy_broken`.\n"
    )


def broken_text(code: str, example_text: str) -> str:
    what, edit, resign = EXAMPLES[code]
    body = "".join(
        line for line in example_text.splitlines(keepends=True) if not line.startswith("#")
    )
    text = edit(body)
    return _header(code, what) + (_resign(text) if resign else text)


def write_all() -> list[Path]:
    EXAMPLE_POLICY.write_text(_resign(EXAMPLE_POLICY.read_text(encoding="utf-8")), encoding="utf-8")
    example = EXAMPLE_POLICY.read_text(encoding="utf-8")
    BROKEN.mkdir(exist_ok=True)
    written = []
    for code in EXAMPLES:
        path = BROKEN / f"{code}.yaml"
        path.write_text(broken_text(code, example), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_all():
        print(written)
