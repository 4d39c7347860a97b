"""Enforcement decisions both sides take from a policy.

Fail closed: anything the policy does not name is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from keys.errors import AccessError, PolicyError
from policies.clks import FieldLayout
from policies.linkage_schema import FieldSpec, LinkageSchema
from policies.model import DataItem, Party, Policy


@dataclass(frozen=True)
class ReleasedAttribute:
    """An attribute the gateway may send: its name, source field and generalisation."""

    name: str
    field: str
    generalisation: str


def check_in_force(policy: Policy, *, today: dt.date) -> None:
    """Refuse a policy that is not active or outside its dates."""
    if policy.status != "active":
        raise PolicyError(
            f"policy {policy.policy_id!r} has status {policy.status!r}",
            fix="only an active policy can be used; publish a new signed version",
        )
    if not policy.effective_from <= today <= policy.expires_on:
        raise PolicyError(
            f"policy {policy.policy_id!r} is not in force on {today.isoformat()}",
            fix="renew the policy (a new version with new dates, signed again)",
        )


def check_schema(policy: Policy, schema: LinkageSchema) -> None:
    """Refuse a schema other than the one the policy pins."""
    if policy.linkage_schema != schema.sha256:
        raise PolicyError(
            f"policy {policy.policy_id!r} pins another linkage schema than {schema.name!r}",
            fix="encode with the schema whose SHA-256 the policy's linkage_schema names",
        )


def check_layout(fields: Sequence[FieldLayout], schema: LinkageSchema) -> None:
    """Every encoded field must have exactly the encoding and size the schema gives it."""
    declared = {spec.name: (spec.encoding, spec.nbytes) for spec in schema.fields}
    for layout in fields:
        if declared.get(layout.name) != (layout.encoding, layout.nbytes):
            raise PolicyError(
                f"the field {layout.name!r} is not encoded as the linkage schema declares",
                fix="encode with the unmodified schema that the policy pins",
            )


def _items(policy: Policy, transform: str) -> list[DataItem]:
    return [item for item in policy.data_items if item.transform == transform]


def encoded_fields(policy: Policy, schema: LinkageSchema) -> tuple[FieldSpec, ...]:
    """The schema fields this policy lets a gateway encode (others are never sent)."""
    allowed = {item.field for item in _items(policy, "encode")}
    return tuple(spec for spec in schema.fields if spec.name in allowed)


def released_attributes(policy: Policy) -> tuple[ReleasedAttribute, ...]:
    """Attributes the gateway may send, each in its declared generalised form."""
    released = []
    for item in _items(policy, "generalise"):
        if not item.attribute or not item.generalisation:
            raise PolicyError(
                f"policy {policy.policy_id!r}: data item {item.id!r} generalises without "
                "naming its attribute and generalisation",
                fix="set both 'attribute' and 'generalisation' on the data item",
            )
        released.append(ReleasedAttribute(item.attribute, item.field, item.generalisation))
    return tuple(released)


def provider_for_key(policy: Policy, node_key: str) -> Party:
    """The provider party whose node key this is; anyone else may not upload."""
    party = policy.party_by_key(node_key)
    if party is None or party.role != "provider":
        raise AccessError(
            f"the node key is not a provider's key in policy {policy.policy_id!r}",
            fix="enrol the node's key fingerprint as a provider party in the policy",
        )
    return party
