"""Intake of a signed batch: every check, in order, before anything is stored.

(1) the body is a .clks payload and not over the size limit
(2) the manifest decodes and names every required key
(3) the manifest's signature verifies under the node key it names, and that key is not revoked
(4) the policy is registered here, in force, and the manifest binds its exact hash and version
(5) the node key is a provider party of that policy, and that party is the manifest's source
(6) the body's SHA-256 is the one the manifest signed
(7) the body parses; its schema hash, policy id and version, epoch and record count agree with
    the manifest, the schema is the one the policy pins and is held here, and every field is
    encoded as that schema declares (encoding and size)
(8) every encoded field and attribute is a data item the policy names in that form, and the
    policy lets this provider upload it (policies.decisions.check_upload: the same check the
    gateway makes before sending; each decision is recorded with its deciding rule ids); the
    batch's key epoch is not retired
(9) the batch is fresh (timestamp window) and not a replay (nonce and batch id unseen); the
    same batch sent twice is accepted once and then answered as already stored
(10) stored in one transaction
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from keys import fingerprint, verify_signature
from keys.errors import AccessError, InputError, KeyMaterialError, PolicyError
from linkage.storage import Store
from policies.canonical import canonical_json
from policies.clks import EncodedBatch, load_clks
from policies.decisions import check_in_force, check_layout, check_upload, provider_for_key
from policies.linkage_schema import LinkageSchema
from policies.model import Policy
from policies.rules import DecisionRecorder

CLKS_MEDIA_TYPE = "application/vnd.placelink.clks"
MAX_BODY_BYTES = 512 * 1024 * 1024
FRESHNESS = dt.timedelta(minutes=10)
MANIFEST_KEYS = (
    "batch_id",
    "source",
    "policy_id",
    "policy_version",
    "policy_hash",
    "schema_hash",
    "epoch",
    "record_count",
    "body_sha256",
    "created_at",
    "nonce",
    "node_key",
)


class ReplayError(AccessError):
    """A batch id or nonce was seen before with other content."""


@dataclass(frozen=True)
class IntakeResult:
    batch_id: str
    records: int
    already_stored: bool


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_manifest(
    manifest_b64: str | None, signature_b64: str | None
) -> tuple[dict[str, Any], bytes, bytes]:
    """(2) the manifest, its canonical bytes and the signature."""
    if not manifest_b64 or not signature_b64:
        raise InputError(
            "the Placelink-Manifest or Placelink-Signature header is missing",
            fix="submit batches with the placelink gateway",
        )
    try:
        manifest = json.loads(_b64(manifest_b64))
        signature = _b64(signature_b64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InputError(
            "the manifest or signature header is not valid base64url JSON",
            fix="submit batches with the placelink gateway",
        ) from None
    if not isinstance(manifest, dict) or any(k not in manifest for k in MANIFEST_KEYS):
        raise InputError(
            "the manifest lacks a required key",
            fix=f"a manifest carries {', '.join(MANIFEST_KEYS)}",
        )
    return manifest, canonical_json(manifest), signature


def _check_policy(manifest: dict[str, Any], policy: Policy | None, now: dt.datetime) -> Policy:
    """(4) and (5)."""
    if policy is None:
        raise PolicyError(
            "the batch names a policy this service does not hold",
            fix="register the policy with the linkage service first",
        )
    check_in_force(policy, today=now.date())
    if (
        manifest["policy_hash"] != policy.policy_hash
        or manifest["policy_version"] != policy.version
    ):
        raise PolicyError(
            "the batch was made under another version of the policy",
            fix="fetch the current policy version and publish again",
        )
    party = provider_for_key(policy, fingerprint(bytes.fromhex(str(manifest["node_key"]))))
    if party.id != manifest["source"]:
        raise AccessError(
            "the node key belongs to another party than the batch's source",
            fix="publish from the node enrolled for this source",
        )
    return policy


def _check_body(
    manifest: dict[str, Any],
    body: bytes,
    policy: Policy,
    schemas: dict[str, LinkageSchema],
    recorder: DecisionRecorder | None,
) -> EncodedBatch:
    """(6), (7) and (8)."""
    if hashlib.sha256(body).hexdigest() != manifest["body_sha256"]:
        raise InputError(
            "the body does not match the signed manifest",
            fix="resend the batch; it was altered or truncated in transit",
        )
    batch = load_clks(body)
    header = (batch.schema_hash, batch.policy_id, batch.policy_version, batch.epoch, len(batch))
    signed = (
        manifest["schema_hash"],
        manifest["policy_id"],
        manifest["policy_version"],
        manifest["epoch"],
        manifest["record_count"],
    )
    if header != signed:
        raise InputError(
            "the .clks header disagrees with the signed manifest",
            fix="re-encode and publish the batch again",
        )
    if batch.schema_hash != policy.linkage_schema:
        raise PolicyError(
            "the batch uses another linkage schema than the policy pins",
            fix="encode with the schema the policy's linkage_schema names",
        )
    schema = schemas.get(batch.schema_hash)
    if schema is None:
        raise PolicyError(
            "this service does not hold the linkage schema the policy pins",
            fix="give the service the schema file (PLACELINK_SCHEMAS) whose hash the policy pins",
        )
    check_layout(batch.fields, schema)
    check_upload(
        policy,
        party=str(manifest["source"]),
        fields=[f.name for f in batch.fields],
        attributes=batch.attribute_names,
        recorder=recorder,
    )
    return batch


def _check_fresh(manifest: dict[str, Any], store: Store, now: dt.datetime) -> bool:
    """(9): True when this exact batch is already stored."""
    existing = store.find_batch(str(manifest["batch_id"]))
    if existing is not None:
        if existing.body_sha256 == manifest["body_sha256"] and existing.nonce == manifest["nonce"]:
            return True
        raise ReplayError(
            "a batch with this id was already stored with other content",
            fix="give each new batch a new batch id",
        )
    try:
        created = dt.datetime.fromisoformat(str(manifest["created_at"]))
    except ValueError:
        raise InputError("created_at is not an ISO 8601 time", fix="use the gateway") from None
    if created.tzinfo is None or abs(now - created) > FRESHNESS:
        raise ReplayError(
            "the batch is stale or from the future", fix="check the node's clock and publish again"
        )
    if store.nonce_seen(str(manifest["nonce"])):
        raise ReplayError("the batch's nonce was seen before", fix="publish a fresh batch")
    return False


def _check_not_revoked(manifest: dict[str, Any], store: Store) -> None:
    """(3) a revoked key's uploads stop at once; a store that cannot say refuses (503)."""
    if store.is_revoked(fingerprint(bytes.fromhex(str(manifest["node_key"])))):
        raise AccessError(
            "the node key was revoked",
            fix="make a new node key and have the DPO enrol it in a new policy version",
        )


def _check_epoch(batch: EncodedBatch, store: Store) -> None:
    """(8) encodings of a retired epoch are refused (they were deleted at the switch)."""
    if batch.epoch < store.epoch_floor(batch.policy_id):
        raise PolicyError(
            "the batch was encoded under a retired key epoch",
            fix="combine the current epoch's secret on the gateway and publish again",
        )


def accept_batch(
    *,
    store: Store,
    policies: dict[str, Policy],
    schemas: dict[str, LinkageSchema],
    content_type: str | None,
    body: bytes,
    manifest_b64: str | None,
    signature_b64: str | None,
    now: dt.datetime,
    recorder: DecisionRecorder | None = None,
) -> IntakeResult:
    """Run the checklist above; raise a placelink error at the first failed check."""
    if (content_type or "").split(";")[0].strip() != CLKS_MEDIA_TYPE:
        raise InputError(f"the body must be {CLKS_MEDIA_TYPE}", fix="use the placelink gateway")
    if len(body) > MAX_BODY_BYTES:
        raise InputError("the batch is over the size limit", fix="split it into smaller batches")
    manifest, signed_bytes, signature = decode_manifest(manifest_b64, signature_b64)
    try:
        verify_signature(bytes.fromhex(str(manifest["node_key"])), signature, signed_bytes)
    except ValueError:
        raise KeyMaterialError("signature verification failed", fix="use the gateway") from None
    _check_not_revoked(manifest, store)
    policy = _check_policy(manifest, policies.get(str(manifest["policy_id"])), now)
    batch = _check_body(manifest, body, policy, schemas, recorder)
    _check_epoch(batch, store)
    if _check_fresh(manifest, store, now):
        return IntakeResult(str(manifest["batch_id"]), len(batch), already_stored=True)
    store.store_batch(manifest, body, batch)
    return IntakeResult(str(manifest["batch_id"]), len(batch), already_stored=False)
