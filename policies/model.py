"""The sharing-policy model: a policy YAML as typed, validated parts, and its hash.

Loading validates the whole document first and reports every structural problem at once, each
with its line and fix (:mod:`policies.validate`); the typed :class:`Policy` is built only from a
document with none. Whether a policy is *trusted* (approved by the right DPOs, in force) is a
separate step, :func:`policies.approvals.load_trusted_policy`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from keys.errors import PolicyError
from policies.canonical import canonical_sha256
from policies.findings import FindingList, raise_findings
from policies.located import LocatedDocument, load_located
from policies.validate import validate_structure
from policies.validate_rules import HOUSE_MIN_CELL, HOUSE_ROUNDING
from policies.vocabulary import TOP_LEVEL_KEYS

__all__ = ["HOUSE_MIN_CELL", "HOUSE_ROUNDING", "TOP_LEVEL_KEYS"]
Transform = Literal["encode", "generalise", "drop"]
RuleKind = Literal["permission", "prohibition", "obligation"]


@dataclass(frozen=True)
class Party:
    id: str
    role: str
    organisation: str
    node_key: str | None
    dpo: str
    dpo_key: str | None = None


@dataclass(frozen=True)
class DataItem:
    id: str
    field: str
    category: str
    transform: Transform
    generalisation: str | None = None
    attribute: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Purpose:
    id: str
    description: str


@dataclass(frozen=True)
class Rule:
    """A permission, prohibition or obligation. ``data_items`` None means every item;
    ``by`` None means any released attribute may group a query."""

    id: str
    kind: RuleKind
    action: str
    assignee: str
    purpose: str | None = None
    data_items: tuple[str, ...] | None = None
    by: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class DisclosureControl:
    min_cell: int = HOUSE_MIN_CELL
    rounding: int = HOUSE_ROUNDING
    epsilon_per_query: float | None = None
    epsilon_total: float | None = None


@dataclass(frozen=True)
class Approval:
    key: str
    public_key: bytes
    signature: bytes
    dpo: str = ""


@dataclass(frozen=True)
class Request:
    """Something a party asks to do: upload a data item, view hot-spots by an attribute..."""

    action: str
    party: str
    data_item: str | None = None
    by: str | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class GoldenTest:
    name: str
    request: Request
    expect: Literal["allow", "deny"]
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    policy_id: str
    version: str
    status: str
    effective_from: dt.date
    expires_on: dt.date
    linkage_schema: str
    parties: tuple[Party, ...]
    data_items: tuple[DataItem, ...]
    disclosure: DisclosureControl
    document: dict[str, Any]
    title: str = ""
    summary: str = ""
    purposes: tuple[Purpose, ...] = ()
    rules: tuple[Rule, ...] = ()
    approvals: tuple[Approval, ...] = ()
    tests: tuple[GoldenTest, ...] = ()
    where: str = "policy"

    @cached_property
    def policy_hash(self) -> str:
        """SHA-256 over the canonical JSON of the policy without its approvals (computed once:
        a Policy's document is not to be changed after loading)."""
        return policy_hash(self.document)

    def party(self, party_id: str) -> Party:
        for party in self.parties:
            if party.id == party_id:
                return party
        raise PolicyError(
            f"policy {self.policy_id!r} has no party {party_id!r}",
            fix="add the party to the policy, or use one of its party ids",
        )

    def party_by_key(self, node_key: str) -> Party | None:
        return next((p for p in self.parties if p.node_key and p.node_key == node_key), None)

    def item(self, item_id: str) -> DataItem | None:
        return next((i for i in self.data_items if i.id == item_id), None)

    def rules_of(self, kind: RuleKind) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.kind == kind)


def policy_hash(document: dict[str, Any]) -> str:
    return canonical_sha256({k: v for k, v in document.items() if k != "approvals"})


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _rule(raw: dict[str, Any], kind: RuleKind) -> Rule:
    items = raw.get("data_items")
    by = (raw.get("constraints") or {}).get("by")
    return Rule(
        id=raw["id"],
        kind=kind,
        action=raw["action"],
        assignee=raw["assignee"],
        purpose=raw.get("purpose"),
        data_items=None if items in (None, "all") else tuple(items),
        by=None if by is None else tuple(by),
        description=str(raw.get("description", "")),
    )


def _rules(document: dict[str, Any]) -> tuple[Rule, ...]:
    kinds: tuple[tuple[str, RuleKind], ...] = (
        ("permissions", "permission"),
        ("prohibitions", "prohibition"),
        ("obligations", "obligation"),
    )
    return tuple(_rule(raw, kind) for key, kind in kinds for raw in document.get(key) or [])


def _party(raw: dict[str, Any]) -> Party:
    return Party(
        raw["id"],
        raw["role"],
        str(raw.get("organisation") or ""),
        raw.get("node_key"),
        str(raw.get("dpo") or ""),
        raw.get("dpo_key"),
    )


def _item(raw: dict[str, Any]) -> DataItem:
    return DataItem(
        raw["id"],
        raw["field"],
        raw["category"],
        raw["transform"],
        raw.get("generalisation"),
        raw.get("attribute"),
        str(raw.get("description", "")),
    )


def _golden(index: int, raw: dict[str, Any]) -> GoldenTest:
    request = Request(**{str(k): v for k, v in raw["request"].items()})
    name = str(raw.get("name") or f"tests[{index}]")
    return GoldenTest(name, request, raw["expect"], tuple(raw.get("rules", [])))


def _approval(raw: dict[str, Any]) -> Approval:
    public, signature = bytes.fromhex(raw["public_key"]), bytes.fromhex(raw["signature"])
    return Approval(raw["key"], public, signature, str(raw.get("dpo", "")))


def _disclosure(raw: dict[str, Any] | None) -> DisclosureControl:
    raw = raw or {}
    return DisclosureControl(
        raw.get("min_cell", HOUSE_MIN_CELL),
        raw.get("rounding", HOUSE_ROUNDING),
        raw.get("epsilon_per_query"),
        raw.get("epsilon_total"),
    )


def _build(document: dict[str, Any], where: str) -> Policy:
    return Policy(
        policy_id=document["policy_id"],
        version=document["version"],
        status=document["status"],
        effective_from=_date(document["effective_from"]),
        expires_on=_date(document["expires_on"]),
        linkage_schema=document["linkage_schema"],
        parties=tuple(_party(p) for p in document["parties"] or []),
        data_items=tuple(_item(i) for i in document["data_items"] or []),
        disclosure=_disclosure(document["disclosure_control"]),
        document=document,
        title=document["title"],
        summary=document["summary"],
        purposes=tuple(Purpose(p["id"], p["description"]) for p in document["purpose"] or []),
        rules=_rules(document),
        approvals=tuple(_approval(a) for a in document["approvals"] or []),
        tests=tuple(_golden(i, t) for i, t in enumerate(document["tests"] or [])),
        where=where,
    )


def policy_from_located(located: LocatedDocument) -> Policy:
    """Validate a located document and build the typed policy; every problem in one error."""
    findings = FindingList(located)
    validate_structure(findings)
    raise_findings(findings.sorted(), located.where)
    return _build(located.value, located.where)


def parse_policy(document: Any, *, where: str = "policy") -> Policy:
    """Validate an already-parsed document (no line numbers: findings say line 1)."""
    return policy_from_located(LocatedDocument(value=document, where=where))


def load_policy(path: Path) -> Policy:
    """Read and validate a policy YAML file (structure only; see load_trusted_policy)."""
    return policy_from_located(load_located(path))


def dump_policy(policy_document: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(policy_document, sort_keys=False), encoding="utf-8")
