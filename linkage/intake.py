"""Intake of a signed batch: every check, in order, before anything is stored.

A batch arrives as a resumable upload in chunks (``POST /v1/uploads`` opens it, ``PATCH``
sends chunks, ``POST .../commit`` stores it; docs/formats.md) or, when small, in one request
(``POST /v1/batches``: an upload of one chunk, committed at once). Both run this checklist.

When an upload is opened (and (3)-(6) again at its commit):
(1) the declared body length is under the size limit (in one request: the body is a .clks
    payload, by its content type, and not over the one-request limit)
(2) the manifest decodes and names every required key
(3) the manifest's signature verifies under the node key it names, and that key is not revoked
(4) the policy is registered here, in force, and the manifest binds its exact hash and version
(5) the node key is a provider party of that policy, and that party is the manifest's source
(6) the batch's key epoch, as signed, is not retired
(7) the batch is fresh (timestamp window) and not a replay (nonce and batch id unseen); the
    same batch sent twice is accepted once and then answered as already stored; the same
    opening again of an unfinished upload resumes it (at its offset), as the first was fresh
While chunks arrive:
(8) a chunk names an open upload and carries its signature, is a .clks payload, starts at the
    offset received so far and stays within the declared length; it is stored whole or not
    (linkage.upload_chunks)
At commit, the body read back from the stored chunks block by block, never whole:
(9) every byte declared arrived, and the body's SHA-256 is the one the manifest signed
(10) the body parses; its schema hash, policy id and version, epoch and record count agree
    with the manifest, the schema is the one the policy pins and is held here, and every field
    is encoded as that schema declares (encoding and size)
(11) every encoded field and attribute is a data item the policy names in that form, and the
    policy lets this provider upload it (policies.decisions.check_upload: the same check the
    gateway makes before sending; each decision is recorded with its deciding rule ids); the
    batch's key epoch is not retired
(12) stored in one transaction, the records inserted block by block as the body parses (a bad
    block rolls back every one); a batch stored meanwhile by an identical request is answered
    as already stored, one with other content is a replay
A refused upload is deleted with its chunks; one never committed expires after UPLOAD_TTL.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from keys import fingerprint, verify_signature
from keys.errors import AccessError, InputError, KeyMaterialError, PolicyError, StorageError
from linkage.storage import Store
from linkage.tables import UploadRow
from linkage.upload_storage import (
    UPLOAD_TTL,
    OffsetConflict,
    StoreConflict,
    StoredBody,
)
from policies.canonical import canonical_json
from policies.clks_stream import ClksHeader, iter_clks, read_clks_header
from policies.decisions import check_in_force, check_layout, check_upload, provider_for_key
from policies.linkage_schema import LinkageSchema
from policies.model import Policy
from policies.rules import DecisionRecorder

CLKS_MEDIA_TYPE = "application/vnd.placelink.clks"
MAX_BODY_BYTES = 4 * 1024**3  # one upload, sent in chunks
MAX_REQUEST_BYTES = 64 * 1024**2  # one request: a whole batch, or one chunk of an upload
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
__all__ = ["UPLOAD_TTL", "accept_batch", "commit_upload", "open_upload"]


class ReplayError(AccessError):
    """A batch id or nonce was seen before with other content."""


@dataclass(frozen=True)
class IntakeResult:
    batch_id: str
    records: int
    already_stored: bool


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload stands: bytes received of the declared length, or already stored."""

    batch_id: str
    offset: int
    length: int
    records: int
    already_stored: bool
    resumed: bool = False


def b64decode(text: str) -> bytes:
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
        manifest = json.loads(b64decode(manifest_b64))
        signature = b64decode(signature_b64)
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
    _check_manifest_types(manifest)
    return manifest, canonical_json(manifest), signature


def _check_manifest_types(manifest: dict[str, Any]) -> None:
    """(2) the keys the service stores and counts with have the shape its tables hold."""
    for key in ("epoch", "record_count"):
        value = manifest[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(
                f"the manifest's {key} is not a whole number", fix="submit with the gateway"
            )
    for key, longest in (("batch_id", 36), ("nonce", 64), ("source", 100)):
        value = manifest[key]
        if not isinstance(value, str) or not 0 < len(value) <= longest:
            raise InputError(
                f"the manifest's {key} is not a string of 1 to {longest} characters",
                fix="submit with the gateway",
            )


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


def _check_signed(
    manifest: dict[str, Any],
    signed: bytes,
    signature: bytes,
    store: Store,
    policy: Policy | None,
    now: dt.datetime,
) -> Policy:
    """(3), (4), (5) and (6)."""
    try:
        verify_signature(bytes.fromhex(str(manifest["node_key"])), signature, signed)
    except ValueError:
        raise KeyMaterialError("signature verification failed", fix="use the gateway") from None
    _check_not_revoked(manifest, store)
    checked = _check_policy(manifest, policy, now)
    _check_epoch(str(manifest["policy_id"]), int(manifest["epoch"]), store)
    return checked


def _check_header(
    manifest: dict[str, Any], body: StoredBody, policy: Policy, schemas: dict[str, LinkageSchema]
) -> ClksHeader:
    """(9) and (10)."""
    digest = hashlib.sha256()
    for piece in body.pieces():
        digest.update(piece)
    if digest.hexdigest() != manifest["body_sha256"]:
        raise InputError(
            "the body does not match the signed manifest",
            fix="resend the batch; it was altered or truncated in transit",
        )
    head = read_clks_header(body)
    header = (head.schema_hash, head.policy_id, head.policy_version, head.epoch, head.record_count)
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
    if head.schema_hash != policy.linkage_schema:
        raise PolicyError(
            "the batch uses another linkage schema than the policy pins",
            fix="encode with the schema the policy's linkage_schema names",
        )
    schema = schemas.get(head.schema_hash)
    if schema is None:
        raise PolicyError(
            "this service does not hold the linkage schema the policy pins",
            fix="give the service the schema file (PLACELINK_SCHEMAS) whose hash the policy pins",
        )
    check_layout(head.fields, schema)
    return head


def _check_released(
    manifest: dict[str, Any],
    body: StoredBody,
    policy: Policy,
    schemas: dict[str, LinkageSchema],
    recorder: DecisionRecorder | None,
) -> None:
    """(9), (10) and (11)."""
    head = _check_header(manifest, body, policy, schemas)
    check_upload(
        policy,
        party=str(manifest["source"]),
        fields=[f.name for f in head.fields],
        attributes=head.attribute_names,
        recorder=recorder,
    )


def _already_stored(manifest: dict[str, Any], store: Store) -> bool:
    """(7) True when this exact batch is already stored; a replay when another is."""
    existing = store.find_batch(str(manifest["batch_id"]))
    if existing is None:
        return False
    if existing.body_sha256 == manifest["body_sha256"] and existing.nonce == manifest["nonce"]:
        return True
    raise ReplayError(
        "a batch with this id was already stored with other content",
        fix="give each new batch a new batch id",
    )


def _check_fresh(manifest: dict[str, Any], now: dt.datetime) -> None:
    """(7) for a new upload: a fresh timestamp."""
    try:
        created = dt.datetime.fromisoformat(str(manifest["created_at"]))
    except ValueError:
        raise InputError("created_at is not an ISO 8601 time", fix="use the gateway") from None
    if created.tzinfo is None or abs(now - created) > FRESHNESS:
        raise ReplayError(
            "the batch is stale or from the future", fix="check the node's clock and publish again"
        )


def _nonce_seen(manifest: dict[str, Any], store: Store) -> bool:
    """(7) for a new upload: its nonce was seen before (by a batch or an upload)."""
    nonce = str(manifest["nonce"])
    return store.nonce_seen(nonce) or store.uploads.nonce_seen(nonce)


def _nonce_replay() -> ReplayError:
    return ReplayError("the batch's nonce was seen before", fix="publish a fresh batch")


def _check_not_revoked(manifest: dict[str, Any], store: Store) -> None:
    """(3) a revoked key's uploads stop at once; a store that cannot say refuses (503)."""
    if store.key_state.is_revoked(fingerprint(bytes.fromhex(str(manifest["node_key"])))):
        raise AccessError(
            "the node key was revoked",
            fix="make a new node key and have the DPO enrol it in a new policy version",
        )


def _check_epoch(policy_id: str, epoch: int, store: Store) -> None:
    """(6) and (11) encodings of a retired epoch are refused (they were deleted at the switch)."""
    if epoch < store.key_state.epoch_floor(policy_id):
        raise PolicyError(
            "the batch was encoded under a retired key epoch",
            fix="combine the current epoch's secret on the gateway and publish again",
        )


def check_length(length: int | None, limit: int) -> int:
    """(1)"""
    if length is None or length <= 0:
        raise InputError(
            "the body's length is missing or zero", fix="send Upload-Length: the .clks size"
        )
    if length > limit:
        raise InputError("the batch is over the size limit", fix="split it into smaller batches")
    return length


def check_content_type(content_type: str | None) -> None:
    """(1) and (8) a body or chunk is declared a .clks payload."""
    if (content_type or "").split(";")[0].strip() != CLKS_MEDIA_TYPE:
        raise InputError(f"the body must be {CLKS_MEDIA_TYPE}", fix="use the placelink gateway")


def open_upload(
    *,
    store: Store,
    policies: dict[str, Policy],
    manifest_b64: str | None,
    signature_b64: str | None,
    length: int | None,
    now: dt.datetime,
) -> UploadStatus:
    """Checks (1) to (7); a new session at offset 0, the unfinished one this opening already
    made (resumed), or the answer that the batch is already stored."""
    declared = check_length(length, MAX_BODY_BYTES)
    manifest, signed, signature = decode_manifest(manifest_b64, signature_b64)
    _check_signed(manifest, signed, signature, store, policies.get(str(manifest["policy_id"])), now)
    canonical = base64.urlsafe_b64encode(signature).decode("ascii").rstrip("=")
    for _ in range(2):  # a second look, when an identical opening raced this one
        status = _find_session(store, manifest, declared)
        if status is not None:
            return status
        _check_fresh(manifest, now)
        if not _nonce_seen(manifest, store):
            store.uploads.expire(now=now)
            with contextlib.suppress(StoreConflict):
                store.uploads.open(manifest, canonical, declared, now=now)
                records = int(manifest["record_count"])
                return UploadStatus(str(manifest["batch_id"]), 0, declared, records, False)
    raise _nonce_replay()


def _find_session(store: Store, manifest: dict[str, Any], length: int) -> UploadStatus | None:
    """(7) the stored batch or the unfinished session of this batch id, if any."""
    batch_id, records = str(manifest["batch_id"]), int(manifest["record_count"])
    if _already_stored(manifest, store):
        return UploadStatus(batch_id, length, length, records, already_stored=True)
    session = store.uploads.find(batch_id)
    if session is None:
        return None
    if session.manifest != manifest or session.length != length:
        raise ReplayError(
            "an upload with this batch id is open with another manifest or length",
            fix="give each new batch a new batch id",
        )
    return UploadStatus(batch_id, int(session.received), length, records, False, resumed=True)


def commit_upload(
    *,
    store: Store,
    policies: dict[str, Policy],
    schemas: dict[str, LinkageSchema],
    session: UploadRow,
    now: dt.datetime,
    recorder: DecisionRecorder | None = None,
) -> IntakeResult:
    """Checks (3) to (6) again, then (9) to (12); a refusal deletes the upload."""
    manifest = session.manifest
    batch_id, records = str(manifest["batch_id"]), int(manifest["record_count"])
    if _already_stored(manifest, store):
        return IntakeResult(batch_id, records, already_stored=True)
    if session.received != session.length:  # (9) incomplete: it stays open to be resumed
        raise InputError(
            "the upload is not complete",
            fix=f"send the bytes from offset {session.received} on, then commit",
        )
    body = store.uploads.body(session)
    try:
        _check_signed(manifest, canonical_json(manifest), b64decode(session.signature), store,
                      policies.get(str(manifest["policy_id"])), now)  # fmt: skip
        _check_released(manifest, body, policies[str(manifest["policy_id"])], schemas, recorder)
        stored = store.store_batch(manifest, iter_clks(body))
    except StoreConflict:
        if _already_stored(manifest, store):
            return IntakeResult(batch_id, records, already_stored=True)
        store.uploads.discard(batch_id)
        raise _nonce_replay() from None
    except StorageError:
        raise  # the store failed, not the upload: it stays open to commit again
    except (AccessError, InputError, KeyMaterialError, PolicyError):
        store.uploads.discard(batch_id)
        raise
    return IntakeResult(batch_id, stored, already_stored=False)


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
    """A whole batch in one request: the checklist above, as an upload of one chunk committed
    at once; raise a placelink error at the first failed check."""
    check_content_type(content_type)
    check_length(len(body), MAX_REQUEST_BYTES)
    status = open_upload(
        store=store, policies=policies, manifest_b64=manifest_b64,
        signature_b64=signature_b64, length=len(body), now=now,
    )  # fmt: skip
    if status.already_stored:
        return IntakeResult(status.batch_id, status.records, already_stored=True)
    try:  # from where an identical request racing this one, or an unfinished upload, stands
        rest = body[status.offset :]
        store.uploads.append(status.batch_id, status.offset, io.BytesIO(rest), len(rest))
    except OffsetConflict:
        pass  # the racing request sent the body: commit it (stored once, then already stored)
    session = store.uploads.find(status.batch_id)
    if session is None:  # refused and deleted by a racing identical request's commit
        raise _nonce_replay()
    return commit_upload(
        store=store, policies=policies, schemas=schemas, session=session, now=now,
        recorder=recorder,
    )  # fmt: skip
