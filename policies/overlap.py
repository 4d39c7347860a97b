"""Consistency checks of a policy's rules: names that point nowhere, items nobody uses,
sensitive data without its legal condition, permissions without purpose, and a permission and
a prohibition that cover the same request (prohibition wins at run time, but a DPO should
see the contradiction and resolve it in the text)."""

from __future__ import annotations

from policies.findings import FindingList
from policies.model import Policy, Rule
from policies.vocabulary import ANY_ASSIGNEE, ROLES

_KEYS = {"permission": "permissions", "prohibition": "prohibitions", "obligation": "obligations"}


def _path(policy: Policy, rule: Rule) -> tuple[str, int]:
    same_kind = policy.rules_of(rule.kind)
    return _KEYS[rule.kind], same_kind.index(rule)


def _names(findings: FindingList, policy: Policy) -> None:
    """Names that point nowhere (with no purpose at all, no-purpose says it once)."""
    items = {i.id for i in policy.data_items}
    purposes = {p.id for p in policy.purposes}
    assignees = {p.id for p in policy.parties} | set(ROLES) | {ANY_ASSIGNEE}
    attributes = {i.attribute for i in policy.data_items if i.transform == "generalise"}
    for rule in policy.rules:
        key, index = _path(policy, rule)
        for pos, item in enumerate(rule.data_items or ()):
            if item not in items:
                findings.add(
                    "undeclared-item",
                    (key, index, "data_items", pos),
                    f"rule {rule.id} names an undeclared data item",
                    "declare it under data_items, or remove it from the rule",
                )
        for pos, attribute in enumerate(rule.by or ()):
            if attribute not in attributes:
                findings.add(
                    "undeclared-item",
                    (key, index, "constraints", "by", pos),
                    f"rule {rule.id} groups by an attribute no data item releases",
                    "declare a generalised data item with that attribute",
                )
        if purposes and rule.purpose is not None and rule.purpose not in purposes:
            findings.add(
                "undeclared-purpose",
                (key, index, "purpose"),
                f"rule {rule.id} names an undeclared purpose",
                "declare the purpose under purpose, or use a declared one",
            )
        if rule.assignee not in assignees:
            findings.add(
                "undeclared-assignee",
                (key, index, "assignee"),
                f"rule {rule.id}'s assignee is not a party, a role or 'any'",
                f"use a party id, one of {', '.join(ROLES)}, or any",
            )


def _unused(findings: FindingList, policy: Policy) -> None:
    """A shared item (encode or generalise) that no upload permission covers."""
    uploads = [r for r in policy.rules_of("permission") if r.action == "upload"]
    for index, item in enumerate(policy.data_items):
        if item.transform == "drop":
            continue
        if not any(r.data_items is None or item.id in r.data_items for r in uploads):
            findings.add(
                "unused-item",
                ("data_items", index),
                f"data item {item.id} is declared as shared but no upload permission covers it",
                "remove it, mark it transform: drop, or name it in an upload permission",
            )


def _legal_conditions(findings: FindingList, policy: Policy) -> None:
    basis = policy.document.get("lawful_basis") or {}
    for index, item in enumerate(policy.data_items):
        if item.transform == "drop":
            continue
        if item.category == "special" and not (basis.get("article_9") or basis.get("part_3")):
            findings.add(
                "special-category-without-condition",
                ("data_items", index, "category"),
                f"data item {item.id} is special-category data",
                "add lawful_basis.article_9 (with its DPA 2018 schedule 1 condition), "
                "or part_3 for law-enforcement processing",
            )
        if item.category == "criminal_offence" and not (
            basis.get("schedule_1") or basis.get("part_3")
        ):
            findings.add(
                "criminal-offence-without-basis",
                ("data_items", index, "category"),
                f"data item {item.id} is criminal-offence data",
                "add lawful_basis.schedule_1 (a DPA 2018 schedule 1 condition) "
                "or lawful_basis.part_3",
            )


def _assignees_overlap(policy: Policy, a: str, b: str) -> bool:
    if ANY_ASSIGNEE in (a, b) or a == b:
        return True
    roles = {p.id: p.role for p in policy.parties}
    return roles.get(a) == b or roles.get(b) == a


def _sets_overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    return a is None or b is None or bool(set(a) & set(b))


def rules_overlap(policy: Policy, permission: Rule, prohibition: Rule) -> bool:
    """Whether some request is covered by both rules."""
    return (
        permission.action == prohibition.action
        and _assignees_overlap(policy, permission.assignee, prohibition.assignee)
        and _sets_overlap(permission.data_items, prohibition.data_items)
        and _sets_overlap(permission.by, prohibition.by)
        and not (
            permission.purpose and prohibition.purpose and permission.purpose != prohibition.purpose
        )
    )


def _overlaps(findings: FindingList, policy: Policy) -> None:
    for permission in policy.rules_of("permission"):
        key, index = _path(policy, permission)
        if permission.purpose is None:
            findings.add(
                "permission-without-purpose",
                (key, index),
                f"permission {permission.id} names no purpose",
                "add `purpose:` with a declared purpose id",
            )
        for prohibition in policy.rules_of("prohibition"):
            if rules_overlap(policy, permission, prohibition):
                findings.add(
                    "overlapping-rules",
                    (key, index),
                    f"permission {permission.id} and prohibition {prohibition.id} "
                    "cover the same request (the prohibition wins)",
                    "narrow one of them so that they no longer overlap",
                )


def lint_consistency(findings: FindingList, policy: Policy) -> None:
    _names(findings, policy)
    _unused(findings, policy)
    _legal_conditions(findings, policy)
    _overlaps(findings, policy)
