"""DPO approvals: Ed25519 signatures over the policy hash, and whom to trust.

Trust decision (also in docs/dpo.md):
- Each party names its DPO's signing-key fingerprint in the policy (``parties[].dpo_key``).
- A policy version is *approved* when every provider party's DPO and the linkage service's
  DPO has signed its hash. One signature covers every party that names the same DPO key (a
  council DPO for children's services and housing). Recipients may sign; they are not required.
- The policy cannot vouch for itself: the linkage service (and any verifier that acts on the
  policy) also holds a list of DPO key fingerprints it trusts, given out of band by each DPO
  (``PLACELINK_TRUSTED_DPO_KEYS``). Every required DPO key must be on that list.
- A missing or empty trust list fails closed: no policy loads. The only way round it is the
  explicitly named ``allow_unsigned_policies_unsafe``, for tests.

The signed message is ``placelink-policy-approval/v1/`` + the policy hash (hex), so a DPO
signature can never be mistaken for a batch signature made with a node key.

Verification is a numbered checklist (:func:`verify_approvals`):
(1) the approval's public key has the fingerprint it claims;
(2) that fingerprint is some party's ``dpo_key`` (and, when a trust list is given, on it);
(3) the signature verifies over this policy version's hash;
(4) every required party has an approval that passed (1)-(3); none required is a failure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from keys import SigningKey, fingerprint, verify_signature
from keys.errors import ConfigError, KeyMaterialError, PolicyError
from policies.decisions import check_in_force
from policies.model import Approval, Party, Policy, load_policy
from policies.vocabulary import REQUIRED_APPROVER_ROLES

APPROVAL_PREFIX = "placelink-policy-approval/v1/"


def approval_message(policy_hash: str) -> bytes:
    return (APPROVAL_PREFIX + policy_hash).encode("ascii")


def make_approval(policy: Policy, key: SigningKey) -> dict[str, str]:
    """The approvals entry a DPO adds: fingerprint, public key and signature (hex)."""
    dpo = next((p.dpo for p in policy.parties if p.dpo_key == key.fingerprint), "")
    return {
        "key": key.fingerprint,
        "dpo": dpo,
        "public_key": key.public_raw.hex(),
        "signature": key.sign(approval_message(policy.policy_hash)).hex(),
    }


def required_approvers(policy: Policy) -> tuple[Party, ...]:
    return tuple(p for p in policy.parties if p.role in REQUIRED_APPROVER_ROLES)


@dataclass(frozen=True)
class ApprovalReport:
    """Which required parties approved this version, which did not, and bad approvals."""

    approved: tuple[str, ...]
    missing: tuple[str, ...]
    bad: tuple[tuple[int, str], ...] = field(default=())  # (approvals index, reason)

    @property
    def complete(self) -> bool:
        return bool(self.approved) and not self.missing and not self.bad


def _approval_problem(
    policy: Policy, approval: Approval, trusted: frozenset[str] | None
) -> str | None:
    """(1)-(3) for one approval; None when it passes."""
    if fingerprint(approval.public_key) != approval.key:
        return "its public key does not have the fingerprint it claims"
    if approval.key not in {p.dpo_key for p in policy.parties if p.dpo_key}:
        return "its key is no party's dpo_key"
    if trusted is not None and approval.key not in trusted:
        return "its key is not on this verifier's list of trusted DPO keys"
    try:
        verify_signature(
            approval.public_key, approval.signature, approval_message(policy.policy_hash)
        )
    except KeyMaterialError:
        return "the signature does not verify over this version's hash (re-sign it)"
    return None


def verify_approvals(policy: Policy, *, trusted: frozenset[str] | None = None) -> ApprovalReport:
    """Check every approval and that every required party approved; see the checklist."""
    good: set[str] = set()
    bad = []
    for index, approval in enumerate(policy.approvals):
        problem = _approval_problem(policy, approval, trusted)
        if problem is None:
            good.add(approval.key)
        else:
            bad.append((index, problem))
    required = required_approvers(policy)
    approved = tuple(p.id for p in required if p.dpo_key in good)
    missing = tuple(p.id for p in required if p.dpo_key not in good)
    return ApprovalReport(approved, missing, tuple(bad))


@dataclass(frozen=True)
class PolicyTrust:
    """What a verifier trusts. Empty trusts nothing (fail closed)."""

    trusted_dpo_keys: frozenset[str] = frozenset()
    allow_unsigned_policies_unsafe: bool = False


def check_approved(policy: Policy, *, trust: PolicyTrust) -> None:
    """Refuse a policy that the required, trusted DPOs have not all approved."""
    if trust.allow_unsigned_policies_unsafe:
        return
    if not trust.trusted_dpo_keys:
        raise ConfigError(
            "no trusted DPO keys are configured, so no policy can be verified",
            fix="set PLACELINK_TRUSTED_DPO_KEYS to the DPOs' key fingerprints (comma-separated)",
        )
    report = verify_approvals(policy, trusted=trust.trusted_dpo_keys)
    if not report.complete:
        parties = ", ".join([*report.missing, *(f"approvals[{i}]" for i, _ in report.bad)])
        raise PolicyError(
            f"{policy.where}: policy {policy.policy_id!r} version {policy.version!r} is not "
            f"approved by every required, trusted DPO (missing or invalid: {parties})",
            fix="have each DPO run `placelink policy sign`; check `placelink policy verify`",
        )


def load_trusted_policy(path: Path, *, trust: PolicyTrust, today: dt.date) -> Policy:
    """(a) valid structure, (b) active and in force today, (c) approved by trusted DPOs."""
    policy = load_policy(path)
    check_in_force(policy, today=today)
    check_approved(policy, trust=trust)
    return policy
