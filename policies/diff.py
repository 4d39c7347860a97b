"""``placelink policy diff OLD NEW``: what the new version newly allows or forbids, what else
changed, and whether it is an amendment that every required DPO must sign again.

"Newly allows / forbids" is computed, not guessed: both versions decide every request that
can be formed from their actions, parties (and roles), data items and attributes, and the
requests whose outcome differs are listed. Any change to the hashed text (everything but the
approvals) is an amendment: the old approvals do not carry over.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from policies.model import Policy, Request
from policies.rules import decide
from policies.vocabulary import RULE_ACTIONS

_SECTIONS = (
    "status",
    "title",
    "summary",
    "effective_from",
    "expires_on",
    "review",
    "purpose",
    "lawful_basis",
    "dpia",
    "linkage_schema",
    "disclosure_control",
    "retention",
    "security",
    "obligations",
    "tests",
)


@dataclass
class PolicyDiff:
    amendment: bool
    newly_allowed: list[str] = field(default_factory=list)
    newly_forbidden: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _requests(old: Policy, new: Policy) -> list[Request]:
    parties = sorted({p.id for p in (*old.parties, *new.parties)})
    items = sorted({i.id for i in (*old.data_items, *new.data_items)})
    attributes = sorted({i.attribute for i in (*old.data_items, *new.data_items) if i.attribute})
    requests = []
    for action, party in itertools.product(RULE_ACTIONS, parties):
        requests.append(Request(action, party))
        if action == "upload":
            requests += [Request(action, party, data_item=item) for item in items]
        if action in ("view_hotspots", "aggregate"):
            requests += [Request(action, party, by=a) for a in attributes]
    return requests


def _request_words(request: Request) -> str:
    text = f"{request.party} {request.action}"
    if request.data_item:
        text += f" {request.data_item}"
    return text + (f" by {request.by}" if request.by else "")


def _keyed(items: Any) -> dict[str, Any]:
    return {str(x.get("id")): x for x in items or [] if isinstance(x, dict)}


def _list_changes(name: str, old: Any, new: Any) -> list[str]:
    before, after = _keyed(old), _keyed(new)
    lines = [f"{name}: added {k}" for k in after if k not in before]
    lines += [f"{name}: removed {k}" for k in before if k not in after]
    for key in before.keys() & after.keys():
        for field_name in sorted(set(before[key]) | set(after[key])):
            if before[key].get(field_name) != after[key].get(field_name):
                lines.append(
                    f"{name}: {key}.{field_name} {before[key].get(field_name)!r} -> "
                    f"{after[key].get(field_name)!r}"
                )
    return sorted(lines)


def _text_changes(old: Policy, new: Policy) -> list[str]:
    changes = []
    for key in ("policy_id", "version"):
        if old.document.get(key) != new.document.get(key):
            changes.append(f"{key}: {old.document.get(key)!r} -> {new.document.get(key)!r}")
    for key in ("parties", "data_items", "permissions", "prohibitions"):
        changes += _list_changes(key, old.document.get(key), new.document.get(key))
    for key in _SECTIONS:
        before, after = old.document.get(key), new.document.get(key)
        if before != after:
            scalar = not isinstance(before, dict | list) and not isinstance(after, dict | list)
            changes.append(f"{key}: {before!s} -> {after!s}" if scalar else f"{key}: changed")
    return changes


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    result = PolicyDiff(amendment=old.policy_hash != new.policy_hash)
    for request in _requests(old, new):
        before, after = decide(old, request), decide(new, request)
        if before.allowed and not after.allowed:
            result.newly_forbidden.append(f"{_request_words(request)} ({after.reason})")
        elif after.allowed and not before.allowed:
            result.newly_allowed.append(f"{_request_words(request)} (by {', '.join(after.rules)})")
    result.changes = _text_changes(old, new)
    return result


def format_diff(diff: PolicyDiff, old: Policy, new: Policy) -> str:
    lines = [
        f"{old.where} ({old.version}, {old.policy_hash[:12]}) -> "
        f"{new.where} ({new.version}, {new.policy_hash[:12]})"
    ]
    if diff.amendment:
        lines.append(
            "AMENDMENT: the policy text changed; every required DPO must sign the new "
            "version (old approvals do not carry over)."
        )
        if old.version == new.version:
            lines.append("warning: the text changed but the version did not; raise `version`")
    else:
        lines.append("no amendment: the hashed text is identical (only approvals differ)")
    for title, items in (
        ("newly allowed", diff.newly_allowed),
        ("newly forbidden", diff.newly_forbidden),
        ("other changes", diff.changes),
    ):
        lines.append(f"{title}: {len(items) or 'none'}")
        mark = {"newly allowed": "+", "newly forbidden": "-"}.get(title, "*")
        lines += [f"  {mark} {item}" for item in items]
    return "\n".join(lines)
