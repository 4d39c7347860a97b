"""Deciding a request against a policy's rules.

The conflict rule is explicit and fixed: **a prohibition wins**. A request is denied when any
prohibition covers it, whatever the permissions say; it is allowed only when no prohibition
and at least one permission covers it; anything else is denied (nothing is allowed by default).
Every :class:`Decision` names the policy id, its version hash and the deciding rule ids, so the
audit log (a later issue) can record it as is: see :class:`DecisionRecorder`.

A rule covers a request when
(1) the actions are equal;
(2) the assignee is ``any``, the requesting party's id, or the requesting party's role;
(3) where the rule lists data items, the request's data item is one of them (a rule with no
    list, or ``all``, covers every item);
(4) where the rule is constrained ``by`` attributes, the request's ``by`` is one of them;
(5) where both name a purpose, they are equal (purposes are checked only when a request
    states one).
Unknown means deny: a request that leaves out a data item or ``by`` the rule restricts is
*not* covered by such a permission, and *is* covered by such a prohibition.
An upload of a data item the policy does not declare, or declares with ``transform: drop``,
is denied before any rule is consulted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from policies.model import Policy, Request, Rule
from policies.vocabulary import ANY_ASSIGNEE, ROLES


@dataclass(frozen=True)
class Decision:
    """The answer to one request, with what decided it."""

    allowed: bool
    policy_id: str
    policy_hash: str
    rules: tuple[str, ...]
    reason: str
    request: Request

    @property
    def outcome(self) -> str:
        return "allow" if self.allowed else "deny"


class DecisionRecorder(Protocol):
    """Where decisions go: the seam for the hash-chained audit log."""

    def record(self, decision: Decision) -> None: ...


@dataclass
class MemoryDecisionLog:
    """Keeps the latest decisions in memory (the default until the audit log exists);
    bounded, so that a long-running service does not grow without limit."""

    limit: int = 10_000
    decisions: list[Decision] = field(default_factory=list)

    def record(self, decision: Decision) -> None:
        self.decisions.append(decision)
        if len(self.decisions) > self.limit:
            del self.decisions[: len(self.decisions) - self.limit]


def _role(policy: Policy, party_id: str) -> str | None:
    if party_id in ROLES:
        return party_id
    return next((p.role for p in policy.parties if p.id == party_id), None)


def covers(policy: Policy, rule: Rule, request: Request) -> bool:
    """Whether ``rule`` applies to ``request`` (the checklist in the module docstring)."""
    if rule.action != request.action:
        return False
    if rule.assignee not in (ANY_ASSIGNEE, request.party, _role(policy, request.party)):
        return False
    prohibition = rule.kind == "prohibition"
    if not _within(rule.data_items, request.data_item, unknown_covers=prohibition):
        return False
    if not _within(rule.by, request.by, unknown_covers=prohibition):
        return False
    return not (rule.purpose and request.purpose and rule.purpose != request.purpose)


def _within(allowed: tuple[str, ...] | None, asked: str | None, *, unknown_covers: bool) -> bool:
    if allowed is None:
        return True
    return unknown_covers if asked is None else asked in allowed


def _undeclared_item(policy: Policy, request: Request) -> str | None:
    if request.data_item is None:
        return None
    item = policy.item(request.data_item)
    if item is None:
        return "the policy declares no such data item"
    if item.transform == "drop" and request.action == "upload":
        return "the policy declares this data item as dropped (never sent)"
    return None


def decide(policy: Policy, request: Request) -> Decision:
    """Allow or deny ``request``; prohibition wins; default deny."""

    def answer(allowed: bool, rules: tuple[str, ...], reason: str) -> Decision:
        return Decision(allowed, policy.policy_id, policy.policy_hash, rules, reason, request)

    undeclared = _undeclared_item(policy, request)
    if undeclared:
        return answer(False, (), undeclared)
    prohibited = [r.id for r in policy.rules_of("prohibition") if covers(policy, r, request)]
    if prohibited:
        return answer(False, tuple(prohibited), "a prohibition covers it (prohibition wins)")
    permitted = [r.id for r in policy.rules_of("permission") if covers(policy, r, request)]
    if permitted:
        return answer(True, tuple(permitted), "a permission covers it and no prohibition does")
    return answer(False, (), "no permission covers it (nothing is allowed by default)")
