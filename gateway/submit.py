"""Submitting an encoded batch: a signed manifest bound to the policy, schema and epoch.

The body is the ``.clks`` layout; the manifest travels base64url-encoded in the
``Placelink-Manifest`` header and its Ed25519 signature in ``Placelink-Signature``. The
signature covers the canonical JSON of the manifest, which carries the SHA-256 of the body.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from keys import SigningKey
from keys.errors import AccessError, InputError, PlacelinkError
from policies.canonical import canonical_json
from policies.clks import EncodedBatch, dump_clks

CLKS_MEDIA_TYPE = "application/vnd.placelink.clks"


@dataclass(frozen=True)
class Submission:
    manifest: dict[str, Any]
    body: bytes
    signature: bytes

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": CLKS_MEDIA_TYPE,
            "Placelink-Manifest": b64(canonical_json(self.manifest)),
            "Placelink-Signature": b64(self.signature),
        }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def prepare_submission(
    batch: EncodedBatch,
    *,
    source: str,
    policy_hash: str,
    node_key: SigningKey,
    now: dt.datetime | None = None,
) -> Submission:
    """Serialise, describe and sign one batch."""
    body = dump_clks(batch)
    moment = now or dt.datetime.now(dt.UTC)
    manifest = {
        "batch_id": str(uuid.uuid4()),
        "source": source,
        "policy_id": batch.policy_id,
        "policy_version": batch.policy_version,
        "policy_hash": policy_hash,
        "schema_hash": batch.schema_hash,
        "epoch": batch.epoch,
        "record_count": len(batch),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "created_at": moment.isoformat(timespec="seconds"),
        "nonce": secrets.token_hex(16),
        "node_key": node_key.public_raw.hex(),
    }
    return Submission(manifest, body, node_key.sign(canonical_json(manifest)))


def upload(
    submission: Submission,
    service_url: str,
    *,
    timeout: float = 60.0,
    auth: Callable[[], Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """POST the batch to the linkage service; problems come back as placelink errors.
    ``auth`` gives the request's authorization headers (e.g.
    :meth:`gateway.oauth_client.ClientCredentials.headers`); without it the service refuses."""
    url = f"{service_url.rstrip('/')}/v1/batches"
    headers = {**submission.headers(), **(auth() if auth else {})}
    try:
        response = requests.post(url, data=submission.body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise PlacelinkError(
            f"cannot reach the linkage service at {service_url}: {type(exc).__name__}",
            fix="check the service URL and that the service is running",
        ) from None
    payload: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        cls = AccessError if response.status_code in (401, 403) else InputError
        raise cls(
            f"the linkage service refused the batch: {payload.get('title', response.status_code)}"
            f" - {payload.get('detail', '')}",
            fix="see the detail; nothing of the batch was stored",
        )
    return payload
