"""The sharing-policy model: load a policy YAML into typed parts, and hash it.

This is the part of the model the walking skeleton enforces (parties, data items, the pinned
linkage schema, status and dates, disclosure control). Lint, explain, diff and signatures build
on the same model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from keys.errors import PolicyError
from policies.canonical import canonical_sha256

TOP_LEVEL_KEYS = (
    "policy_id",
    "version",
    "status",
    "title",
    "summary",
    "effective_from",
    "expires_on",
    "review",
    "parties",
    "purpose",
    "lawful_basis",
    "dpia",
    "linkage_schema",
    "data_items",
    "permissions",
    "prohibitions",
    "obligations",
    "disclosure_control",
    "retention",
    "security",
    "approvals",
    "tests",
)
HOUSE_MIN_CELL = 8
HOUSE_ROUNDING = 5
Transform = Literal["encode", "generalise", "drop"]


@dataclass(frozen=True)
class Party:
    id: str
    role: str
    organisation: str
    node_key: str | None
    dpo: str


@dataclass(frozen=True)
class DataItem:
    id: str
    field: str
    category: str
    transform: Transform
    generalisation: str | None = None
    attribute: str | None = None


@dataclass(frozen=True)
class DisclosureControl:
    min_cell: int = HOUSE_MIN_CELL
    rounding: int = HOUSE_ROUNDING


@dataclass(frozen=True)
class Policy:
    policy_id: str
    version: str
    status: str
    effective_from: dt.date
    expires_on: dt.date
    linkage_schema: str | None
    parties: tuple[Party, ...]
    data_items: tuple[DataItem, ...]
    disclosure: DisclosureControl
    document: dict[str, Any]

    @property
    def policy_hash(self) -> str:
        """SHA-256 over the canonical JSON of the policy without its approvals."""
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


def policy_hash(document: dict[str, Any]) -> str:
    return canonical_sha256({k: v for k, v in document.items() if k != "approvals"})


def _require(document: dict[str, Any], where: str) -> None:
    missing = [key for key in TOP_LEVEL_KEYS if key not in document]
    unknown = [key for key in document if key not in TOP_LEVEL_KEYS]
    problems = [f"missing top-level key {k!r}" for k in missing]
    problems += [f"unknown top-level key {k!r}" for k in unknown]
    if problems:
        raise PolicyError(
            f"{where}: " + "; ".join(problems),
            fix="a policy has exactly the top-level keys listed in docs/formats.md",
        )


def _date(value: Any, key: str, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PolicyError(f"{where}: {key} is not a date", fix="write it as YYYY-MM-DD") from None


def _parties(raw: Any, where: str) -> tuple[Party, ...]:
    try:
        return tuple(
            Party(
                str(p["id"]),
                str(p["role"]),
                str(p.get("organisation", "")),
                p.get("node_key"),
                str(p.get("dpo", "")),
            )
            for p in raw
        )
    except (KeyError, TypeError):
        raise PolicyError(
            f"{where}: a party lacks id or role", fix="give each party both"
        ) from None


def _data_items(raw: Any, where: str) -> tuple[DataItem, ...]:
    items = []
    for index, item in enumerate(raw or []):
        if not isinstance(item, dict) or item.get("transform") not in (
            "encode",
            "generalise",
            "drop",
        ):
            raise PolicyError(
                f"{where}: data_items[{index}] has no valid transform",
                fix="set transform to encode, generalise or drop",
            )
        items.append(
            DataItem(
                id=str(item.get("id", item.get("field"))),
                field=str(item.get("field")),
                category=str(item.get("category", "personal")),
                transform=item["transform"],
                generalisation=item.get("generalisation"),
                attribute=item.get("attribute"),
            )
        )
    return tuple(items)


def _disclosure(raw: Any, where: str) -> DisclosureControl:
    raw = raw or {}
    try:
        control = DisclosureControl(
            min_cell=int(raw.get("min_cell", HOUSE_MIN_CELL)),
            rounding=int(raw.get("rounding", HOUSE_ROUNDING)),
        )
    except (AttributeError, TypeError, ValueError):
        raise PolicyError(
            f"{where}: disclosure_control must map min_cell and rounding to whole numbers",
            fix="write e.g. `disclosure_control: {min_cell: 8, rounding: 5}`",
        ) from None
    if control.min_cell < HOUSE_MIN_CELL or control.rounding < HOUSE_ROUNDING:
        raise PolicyError(
            f"{where}: disclosure_control is looser than the house default",
            fix=f"use min_cell >= {HOUSE_MIN_CELL} and rounding >= {HOUSE_ROUNDING}",
        )
    return control


def parse_policy(document: Any, *, where: str = "policy") -> Policy:
    """Validate a parsed policy document into a :class:`Policy`."""
    if not isinstance(document, dict):
        raise PolicyError(f"{where}: not a YAML mapping", fix="see policies/examples/")
    _require(document, where)
    return Policy(
        policy_id=str(document["policy_id"]),
        version=str(document["version"]),
        status=str(document["status"]),
        effective_from=_date(document["effective_from"], "effective_from", where),
        expires_on=_date(document["expires_on"], "expires_on", where),
        linkage_schema=document.get("linkage_schema"),
        parties=_parties(document["parties"], where),
        data_items=_data_items(document["data_items"], where),
        disclosure=_disclosure(document["disclosure_control"], where),
        document=document,
    )


def load_policy(path: Path) -> Policy:
    """Read and validate a policy YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}", fix="check path and YAML") from None
    return parse_policy(document, where=str(path))


def dump_policy(policy_document: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(policy_document, sort_keys=False), encoding="utf-8")
