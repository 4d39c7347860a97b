"""Structural validation of the policy's rules and controls: data-item generalisations,
permissions, prohibitions, obligations, disclosure control, approvals and golden tests."""

from __future__ import annotations

from typing import Any

from policies.checks import Checker
from policies.located import YamlPath
from policies.vocabulary import (
    CONSTRAINTS,
    FINGERPRINT_PATTERN,
    GENERALISATIONS,
    IDENTIFIER_FIELDS,
    OBLIGATION_ACTIONS,
    RULE_ACTIONS,
)

HOUSE_MIN_CELL = 8
HOUSE_ROUNDING = 5
RULE_KEYS = ("id", "action", "assignee")
RULE_OPTIONAL = ("purpose", "data_items", "constraints", "description")
HEX_KEY = 64
HEX_SIGNATURE = 128


def _generalisation(check: Checker, path: YamlPath, item: Any) -> None:
    if not isinstance(item, dict):
        return
    transform, name = item.get("transform"), item.get("generalisation")
    if transform == "generalise":
        if not isinstance(name, str) or name not in GENERALISATIONS:
            check.bad(
                (*path, "generalisation"),
                "is missing or unknown",
                f"use one of {', '.join(GENERALISATIONS)}",
            )
        elif name == "flag" and item.get("field") in IDENTIFIER_FIELDS:
            check.bad(
                (*path, "generalisation"),
                "a flag cannot be made from an identifier",
                "make flags from the agency's own yes/no columns (open case, ...)",
            )
        elif GENERALISATIONS[name] and item.get("field") not in GENERALISATIONS[name]:
            check.bad(
                (*path, "generalisation"),
                f"{name} cannot apply to this field",
                f"{name} applies to {', '.join(GENERALISATIONS[name])}",
            )
        check.ident((*path, "attribute"), item.get("attribute"))
    elif name is not None or item.get("attribute") is not None:
        check.bad(
            (*path, "transform"),
            "only a generalised item has a generalisation",
            "set transform: generalise, or remove generalisation and attribute",
        )


def _rule(check: Checker, path: YamlPath, rule: Any, actions: tuple[str, ...]) -> None:
    if not check.keys(path, rule, RULE_KEYS, RULE_OPTIONAL):
        return
    check.ident((*path, "id"), rule.get("id"))
    check.choice((*path, "action"), rule.get("action"), actions)
    check.ident((*path, "assignee"), rule.get("assignee"))
    if rule.get("purpose") is not None:
        check.ident((*path, "purpose"), rule["purpose"])
    items = rule.get("data_items")
    if items is not None and items != "all":
        if isinstance(items, list) and items:
            for index, item in enumerate(items):
                check.ident((*path, "data_items", index), item)
        else:
            check.bad(
                (*path, "data_items"),
                "must be `all` or a list of data item ids",
                "write e.g. `data_items: [given_name, area]`",
            )
    _constraints(check, (*path, "constraints"), rule.get("constraints"))


def _constraints(check: Checker, path: YamlPath, value: Any) -> None:
    if value is None or not check.keys(path, value, (), CONSTRAINTS):
        return
    by = value.get("by")
    if by is not None and not (isinstance(by, list) and by and all(isinstance(b, str) for b in by)):
        check.bad((*path, "by"), "must list attribute names", "write e.g. `by: [area]`")


def _disclosure(check: Checker, path: YamlPath, value: Any) -> None:
    optional = ("min_cell", "rounding", "epsilon_per_query", "epsilon_total")
    if value is None or not check.keys(path, value, (), optional):
        return
    for key, floor in (("min_cell", HOUSE_MIN_CELL), ("rounding", HOUSE_ROUNDING)):
        number = value.get(key, floor)
        if isinstance(number, bool) or not isinstance(number, int):
            check.bad((*path, key), "must be a whole number", f"write e.g. `{key}: {floor}`")
        elif number < floor:
            check.findings.add(
                "disclosure-floor",
                (*path, key),
                f"{key} {number} is below the house floor",
                f"use {key} >= {floor} (a policy may only tighten the house default)",
            )
    for key in ("epsilon_per_query", "epsilon_total"):
        number = value.get(key)
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int | float) or number <= 0
        ):
            check.bad((*path, key), "must be a positive number", f"write e.g. `{key}: 0.5`")


def _approval(check: Checker, path: YamlPath, value: Any) -> None:
    if not check.keys(path, value, ("key", "public_key", "signature"), ("dpo",)):
        return
    key, public, signature = value.get("key"), value.get("public_key"), value.get("signature")
    if not isinstance(key, str) or not FINGERPRINT_PATTERN.match(key):
        check.bad(
            (*path, "key"), "is not a key fingerprint", "re-sign with `placelink policy sign`"
        )
    for name, text, size in (
        ("public_key", public, HEX_KEY),
        ("signature", signature, HEX_SIGNATURE),
    ):
        if not isinstance(text, str) or len(text) != size or not _is_hex(text):
            check.bad(
                (*path, name), f"is not {size} hex digits", "re-sign with `placelink policy sign`"
            )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _golden(check: Checker, path: YamlPath, value: Any) -> None:
    if not check.keys(path, value, ("request", "expect"), ("rules", "name")):
        return
    request = value.get("request")
    optional = ("data_item", "by", "purpose")
    if check.keys((*path, "request"), request, ("action", "party"), optional):
        for key in ("action", "party", *optional):
            if key in request:
                check.ident((*path, "request", key), request[key])
    check.choice((*path, "expect"), value.get("expect"), ("allow", "deny"))
    rules = value.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        check.bad((*path, "rules"), "must list rule ids", "write e.g. `rules: [P1]` or `rules: []`")


def validate_rules(check: Checker, document: dict[str, Any]) -> None:
    """Add a finding for every structural problem of the rules and controls."""
    items = document.get("data_items")
    check.items(("data_items",), items, lambda p, v: _generalisation(check, p, v))
    for key in ("permissions", "prohibitions"):
        check.items((key,), document.get(key), lambda p, v: _rule(check, p, v, RULE_ACTIONS))
    obligations = document.get("obligations")
    check.items(("obligations",), obligations, lambda p, v: _rule(check, p, v, OBLIGATION_ACTIONS))
    _disclosure(check, ("disclosure_control",), document.get("disclosure_control"))
    check.items(("approvals",), document.get("approvals"), lambda p, v: _approval(check, p, v))
    check.items(("tests",), document.get("tests"), lambda p, v: _golden(check, p, v))
