"""Enforcement decisions both sides take from a policy.

Fail closed: anything the policy does not name is refused. The gateway and the linkage
service call the same functions (:func:`check_upload` for a batch, :func:`require` for any
other request), so the two sides can never disagree on what a policy allows. Each returns or
records :class:`~policies.rules.Decision` objects naming the policy id, its version hash and
the deciding rule ids.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from keys.errors import AccessError, PolicyError
from policies.clks import FieldLayout
from policies.linkage_schema import FieldSpec, LinkageSchema
from policies.model import DataItem, Party, Policy, Request
from policies.rules import Decision, DecisionRecorder, decide


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


def require(
    policy: Policy, request: Request, *, recorder: DecisionRecorder | None = None
) -> Decision:
    """Decide ``request``, record the decision, and raise when it is denied."""
    decision = decide(policy, request)
    if recorder is not None:
        recorder.record(decision)
    if not decision.allowed:
        what = f" for data item {request.data_item!r}" if request.data_item else ""
        by = f" by {request.by!r}" if request.by else ""
        rules = f" (rules: {', '.join(decision.rules)})" if decision.rules else ""
        raise PolicyError(
            f"policy {policy.policy_id!r} does not allow {request.party!r} to "
            f"{request.action}{what}{by}: {decision.reason}{rules}",
            fix="ask the parties' DPOs for an amended, signed policy, or stay within this one",
        )
    return decision


def _item_for(policy: Policy, name: str, transform: str) -> str | None:
    for item in _items(policy, transform):
        if (item.field if transform == "encode" else item.attribute) == name:
            return item.id
    return None


def check_upload(
    policy: Policy,
    *,
    party: str,
    fields: Sequence[str],
    attributes: Sequence[str],
    recorder: DecisionRecorder | None = None,
) -> tuple[Decision, ...]:
    """Both sides' check of a batch: every encoded field and every attribute is a data item
    the policy declares in that form, and the party may upload it. Refuses at the first one
    that is not; every decision taken is recorded."""
    decisions = []
    named = [(f, "encode", "encoded field") for f in fields]
    named += [(a, "generalise", "attribute") for a in attributes]
    for name, transform, noun in named:
        item = _item_for(policy, name, transform)
        if item is None:
            raise PolicyError(
                f"policy {policy.policy_id!r} names no data item for the {noun} {name!r}",
                fix="send only what the policy's data_items allow, in the declared form",
            )
        request = Request("upload", party, data_item=item)
        decisions.append(require(policy, request, recorder=recorder))
    return tuple(decisions)
