"""Structural validation of a policy document: every key typed, every problem reported at once.

Each check adds a finding (file, line, path, fix) instead of raising, so a DPO sees the whole
list in one run. The typed model (:mod:`policies.model`) is built only from a document with no
structural finding.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from policies.checks import FORMAT_FIX, Checker
from policies.findings import FindingList
from policies.located import YamlPath
from policies.validate_rules import validate_rules
from policies.vocabulary import (
    CATEGORIES,
    DURATION_PATTERN,
    ROLES,
    SHA256_PATTERN,
    STATUSES,
    TOP_LEVEL_KEYS,
    TRANSFORMS,
)


def _party(check: Checker, path: YamlPath, party: Any) -> None:
    optional = ("organisation", "node_key", "dpo", "dpo_key")
    if check.keys(path, party, ("id", "role"), optional):
        check.ident((*path, "id"), party.get("id"))
        check.choice((*path, "role"), party.get("role"), ROLES)
        check.text((*path, "organisation"), party.get("organisation"), optional=True)
        check.text((*path, "dpo"), party.get("dpo"), optional=True)
        check.fingerprint((*path, "node_key"), party.get("node_key"))
        check.fingerprint((*path, "dpo_key"), party.get("dpo_key"))


def _purpose(check: Checker, path: YamlPath, purpose: Any) -> None:
    if check.keys(path, purpose, ("id", "description"), ()):
        check.ident((*path, "id"), purpose.get("id"))
        check.text((*path, "description"), purpose.get("description"))


def _data_item(check: Checker, path: YamlPath, item: Any) -> None:
    optional = ("generalisation", "attribute", "description")
    if check.keys(path, item, ("id", "field", "category", "transform"), optional):
        check.ident((*path, "id"), item.get("id"))
        check.ident((*path, "field"), item.get("field"))
        check.choice((*path, "category"), item.get("category"), CATEGORIES)
        check.choice((*path, "transform"), item.get("transform"), TRANSFORMS)
        check.text((*path, "description"), item.get("description"), optional=True)


def _mapping_of_text(check: Checker, path: YamlPath, value: Any) -> None:
    if not isinstance(value, dict):
        if value is not None:
            check.bad(path, "must be a mapping of names to text", f"{FORMAT_FIX}")
        return
    for key, item in value.items():
        check.text((*path, str(key)), item)


def _retention(check: Checker, path: YamlPath, value: Any) -> None:
    if not isinstance(value, dict):
        if value is not None:
            check.bad(path, "must map each kind of data to a period", "e.g. `encodings: P13M`")
        return
    for key, period in value.items():
        if not isinstance(period, str) or not DURATION_PATTERN.match(period):
            check.bad(
                (*path, str(key)), "is not an ISO 8601 period", "write e.g. P13M, P6Y or P90D"
            )


def _scalars(check: Checker, document: dict[str, Any]) -> None:
    check.ident(("policy_id",), document.get("policy_id"))
    check.text(("version",), document.get("version"))
    check.choice(("status",), document.get("status"), STATUSES)
    check.text(("title",), document.get("title"))
    check.text(("summary",), document.get("summary"))
    check.date(("effective_from",), document.get("effective_from"))
    check.date(("expires_on",), document.get("expires_on"))
    start, end = document.get("effective_from"), document.get("expires_on")
    if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
        check.bad(("expires_on",), "is before effective_from", "swap or correct the two dates")
    schema = document.get("linkage_schema")
    if not isinstance(schema, str) or not SHA256_PATTERN.match(schema):
        check.bad(
            ("linkage_schema",),
            "is not a SHA-256 hex digest",
            "write the 64-hex-digit hash of the linkage schema (docs/formats.md)",
        )


def _review_and_dpia(check: Checker, document: dict[str, Any]) -> None:
    review, dpia = document.get("review"), document.get("dpia")
    if review is not None and check.keys(("review",), review, (), ("next_review", "owner")):
        if "next_review" in review:
            check.date(("review", "next_review"), review["next_review"])
        check.text(("review", "owner"), review.get("owner"), optional=True)
    if dpia is not None and check.keys(("dpia",), dpia, (), ("reference", "completed")):
        check.text(("dpia", "reference"), dpia.get("reference"), optional=True)
        if "completed" in dpia:
            check.date(("dpia", "completed"), dpia["completed"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _lists(check: Checker, document: dict[str, Any]) -> None:
    parties = document.get("parties")
    check.items(("parties",), parties, lambda p, v: _party(check, p, v), non_empty=True)
    check.items(("purpose",), document.get("purpose"), lambda p, v: _purpose(check, p, v))
    check.items(("data_items",), document.get("data_items"), lambda p, v: _data_item(check, p, v))
    for key in ("parties", "purpose", "data_items"):
        check.unique_ids((key,), document.get(key))
    rule_ids = [
        (key, index, item.get("id"))
        for key in ("permissions", "prohibitions", "obligations")
        for index, item in enumerate(_as_list(document.get(key)))
        if isinstance(item, dict)
    ]
    seen: set[str] = set()
    for key, index, ident in rule_ids:
        if not isinstance(ident, str):
            continue  # reported as an invalid id
        if ident in seen:
            check.findings.add(
                "duplicate-id",
                (key, index, "id"),
                f"rule id {ident!r} is used twice",
                "give each permission, prohibition and obligation its own id",
            )
        seen.add(ident)


def validate_structure(findings: FindingList) -> None:
    """Add a finding for every structural problem of the located document."""
    document = findings.located.value
    for path in findings.located.duplicates:
        findings.add("duplicate-key", path, "this key is written twice", "keep one of them")
    check = Checker(findings)
    if not check.keys((), document, TOP_LEVEL_KEYS, ()):
        return
    _scalars(check, document)
    _review_and_dpia(check, document)
    _lists(check, document)
    _mapping_of_text(check, ("lawful_basis",), document.get("lawful_basis"))
    _mapping_of_text(check, ("security",), document.get("security"))
    _retention(check, ("retention",), document.get("retention"))
    validate_rules(check, document)
