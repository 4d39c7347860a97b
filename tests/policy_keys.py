"""Shared test helper: example keys and properly signed policies.

The shipped example policy names node and DPO keys derived from public seeds (below), so that
tests can re-sign it after changing it. Anyone can derive these private keys: they are for the
examples and tests only, never for a real deployment.

``python -m tests.policy_keys`` re-signs ``policies/examples/task-force.yaml`` and rewrites the
broken examples (see tests/policy_broken.py) after the example changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import SigningKey
from policies.approvals import PolicyTrust, make_approval
from policies.model import Policy, parse_policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "task-force.yaml"
# party id -> the DPO who signs for it (one council DPO signs for two council services)
EXAMPLE_DPOS = {
    "police": "police-dpo",
    "childrens_services": "council-dpo",
    "housing": "council-dpo",
    "health": "pcn-dpo",
    "school": "schools-dpo",
    "linkage": "csp-dpo",
    "task_force": "csp-dpo",
}


def example_key(name: str) -> SigningKey:
    """A deterministic Ed25519 key for examples and tests (its seed is public)."""
    seed = hashlib.sha256(b"placelink example key/" + name.encode()).digest()
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def example_dpo_keys() -> dict[str, SigningKey]:
    return {name: example_key(name) for name in sorted(set(EXAMPLE_DPOS.values()))}


def example_trust() -> PolicyTrust:
    return PolicyTrust(frozenset(k.fingerprint for k in example_dpo_keys().values()))


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    return document


def sign_document(document: dict[str, Any], keys: Iterable[SigningKey]) -> dict[str, Any]:
    """A copy of ``document`` whose approvals are the given keys' signatures of it."""
    signed = copy.deepcopy(document)
    signed["approvals"] = []
    policy = parse_policy(signed)
    signed["approvals"] = [make_approval(policy, key) for key in keys]
    return signed


def enrolled_document(
    node_keys: dict[str, SigningKey],
    *,
    today: dt.date | None = None,
    dpo_keys: dict[str, SigningKey] | None = None,
) -> dict[str, Any]:
    """The example with these node keys enrolled (others removed), dates around ``today``
    when given, and signed by every DPO (the example DPO keys unless others are given)."""
    document = example_document()
    for party in document["parties"]:
        if party["role"] == "provider":
            key = node_keys.get(party["id"])
            party["node_key"] = key.fingerprint if key else None
    if today is not None:
        document["effective_from"] = today - dt.timedelta(days=30)
        document["expires_on"] = today + dt.timedelta(days=365)
        document["review"]["next_review"] = today + dt.timedelta(days=180)
    keys = dpo_keys or example_dpo_keys()
    for party in document["parties"]:
        party["dpo_key"] = keys[EXAMPLE_DPOS[party["id"]]].fingerprint
    return sign_document(document, keys.values())


def signed_policy(document: dict[str, Any]) -> Policy:
    return parse_policy(sign_document(document, example_dpo_keys().values()))
