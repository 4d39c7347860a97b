"""Submitting an encoded batch: a signed manifest bound to the policy, schema and epoch, sent
as a resumable upload in chunks.

The body is the ``.clks`` layout; the manifest travels base64url-encoded in the
``Placelink-Manifest`` header and its Ed25519 signature in ``Placelink-Signature``. The
signature covers the canonical JSON of the manifest, which carries the SHA-256 of the body.

:func:`upload` opens the upload (``POST /v1/uploads``), sends the body in chunks of
``CHUNK_BYTES`` (``PATCH`` at ``Upload-Offset``), and commits it. A dropped connection or a
busy service is retried with exponential backoff: the client asks the offset the service holds
and resumes there, so no byte is stored twice and a batch sent twice is stored once. The body
can be read from a file (:func:`prepare_file_submission`): the client then holds one chunk in
memory, whatever the batch's size.

A signed submission written to disk before it is sent (:mod:`gateway.pending`) is rebuilt with
:func:`submission_from_file` and resumed after a crash: the same batch id, from the offset the
service holds. Running out of retries, or a 5xx answer, raises :class:`ServiceUnreachable`
(worth trying again later); an opening the service answers as a replay (a batch too old to
open, never received) raises :class:`SubmissionExpired` (nothing of it is or can be stored).
The chunk size is ``PLACELINK_UPLOAD_CHUNK_BYTES`` where set
(:func:`chunk_bytes_from_environment`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from keys import SigningKey
from keys.errors import AccessError, ConfigError, InputError, PlacelinkError
from policies.canonical import canonical_json
from policies.clks import EncodedBatch, dump_clks
from policies.clks_stream import BytesSource, ClksHeader, FileSource, read_clks_header

CLKS_MEDIA_TYPE = "application/vnd.placelink.clks"
CHUNK_BYTES = 8 * 1024 * 1024
CHUNK_VARIABLE = "PLACELINK_UPLOAD_CHUNK_BYTES"
MIN_CHUNK_BYTES = 1024
RETRIES = 6  # consecutive failed requests before giving up
BACKOFF_SECONDS = 0.5  # doubled after each failure, at most MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 8.0
COMMIT_SECONDS = 900.0  # the commit parses and stores every record: a minute or two per 1M
_TRANSIENT = (502, 503, 504)


@dataclass(frozen=True)
class Submission:
    """A signed batch: its manifest, signature and body (in memory, or in ``body_file``)."""

    manifest: dict[str, Any]
    body: bytes
    signature: bytes
    body_file: Path | None = None
    file_size: int = 0  # the body file's size when signed (the file may be gone later)

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": CLKS_MEDIA_TYPE,
            "Placelink-Manifest": b64(canonical_json(self.manifest)),
            "Placelink-Signature": b64(self.signature),
        }

    @property
    def body_length(self) -> int:
        return self.file_size if self.body_file else len(self.body)

    def read_body(self, offset: int, length: int) -> bytes:
        if self.body_file is None:
            return self.body[offset : offset + length]
        with self.body_file.open("rb") as file:
            file.seek(offset)
            return file.read(length)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _manifest(
    header: ClksHeader, *, source: str, policy_hash: str, digest: str, node_key: SigningKey,
    now: dt.datetime | None,
) -> dict[str, Any]:  # fmt: skip
    moment = now or dt.datetime.now(dt.UTC)
    return {
        "batch_id": str(uuid.uuid4()),
        "source": source,
        "policy_id": header.policy_id,
        "policy_version": header.policy_version,
        "policy_hash": policy_hash,
        "schema_hash": header.schema_hash,
        "epoch": header.epoch,
        "record_count": header.record_count,
        "body_sha256": digest,
        "created_at": moment.isoformat(timespec="seconds"),
        "nonce": secrets.token_hex(16),
        "node_key": node_key.public_raw.hex(),
    }


def prepare_submission(
    batch: EncodedBatch,
    *,
    source: str,
    policy_hash: str,
    node_key: SigningKey,
    now: dt.datetime | None = None,
) -> Submission:
    """Serialise, describe and sign one batch (the body in memory)."""
    body = dump_clks(batch)
    header = read_clks_header(BytesSource(body))
    digest = hashlib.sha256(body).hexdigest()
    manifest = _manifest(header, source=source, policy_hash=policy_hash, digest=digest,
                         node_key=node_key, now=now)  # fmt: skip
    return Submission(manifest, body, node_key.sign(canonical_json(manifest)))


def prepare_file_submission(
    path: Path,
    *,
    source: str,
    policy_hash: str,
    node_key: SigningKey,
    now: dt.datetime | None = None,
) -> Submission:
    """Describe and sign a ``.clks`` file, reading it in pieces (it is never held whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        header = read_clks_header(FileSource(file))
        file.seek(0)
        while piece := file.read(CHUNK_BYTES):
            digest.update(piece)
    manifest = _manifest(header, source=source, policy_hash=policy_hash,
                         digest=digest.hexdigest(), node_key=node_key, now=now)  # fmt: skip
    signature = node_key.sign(canonical_json(manifest))
    return Submission(manifest, b"", signature, body_file=path, file_size=path.stat().st_size)


class ServiceUnreachable(PlacelinkError):
    """The service could not be reached, or stayed busy, through every retry, or failed (a
    5xx answer): nothing says the batch is unacceptable, so it is worth sending again later."""


class SubmissionExpired(AccessError):
    """The service answered the opening as a replay: the batch is too old to open (or its
    nonce is spent) and is neither stored nor open there, so it never will be."""


def chunk_bytes_from_environment() -> int:
    """The upload chunk size: ``PLACELINK_UPLOAD_CHUNK_BYTES`` where set, else CHUNK_BYTES."""
    raw = os.environ.get(CHUNK_VARIABLE, "").strip()
    if not raw:
        return CHUNK_BYTES
    if not raw.isdigit() or not MIN_CHUNK_BYTES <= int(raw) <= CHUNK_BYTES:
        raise ConfigError(
            f"{CHUNK_VARIABLE} is not a chunk size",
            fix=f"set it to a whole number of bytes from {MIN_CHUNK_BYTES} to {CHUNK_BYTES}",
        )
    return int(raw)


def submission_from_file(path: Path, manifest: dict[str, Any], signature: bytes) -> Submission:
    """A submission signed earlier, its body in ``path``: the body must still be the one the
    manifest signed (size and SHA-256), else an InputError."""
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as file:
            while piece := file.read(CHUNK_BYTES):
                digest.update(piece)
                size += len(piece)
    except OSError:
        size = -1
    if size < 0 or digest.hexdigest() != manifest.get("body_sha256"):
        raise InputError(
            f"the signed batch {path.name} is missing or not the one its manifest signed",
            fix="discard it (placelink gateway publish --discard-pending) and publish again",
        )
    return Submission(manifest, b"", signature, body_file=path, file_size=size)


class _Transient(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a busy service."""


@dataclass
class _Client:
    http: requests.Session
    service_url: str
    timeout: float
    auth: Callable[[], Mapping[str, str]] | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; a transient failure raises _Transient, a refusal a placelink error.
        Each request carries fresh authorization headers (a token may expire mid-upload)."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs["headers"] = {**kwargs.get("headers", {}), **(self.auth() if self.auth else {})}
        try:
            response = self.http.request(method, f"{self.service_url.rstrip('/')}{path}", **kwargs)
        except requests.RequestException as exc:
            raise _Transient(type(exc).__name__) from None
        if response.status_code in _TRANSIENT:
            raise _Transient(str(response.status_code))
        return response


class _Replayed(InputError):
    """A 409 replay problem (see :class:`SubmissionExpired` for what it means at an opening)."""


def _refusal(response: requests.Response) -> PlacelinkError:
    try:
        payload: dict[str, Any] = response.json() if response.content else {}
    except ValueError:
        payload = {}
    cls: type[PlacelinkError] = InputError
    if response.status_code >= 500:  # the service failed, not the batch: worth trying later
        return ServiceUnreachable(
            f"the linkage service failed ({response.status_code}): "
            f"{payload.get('title', 'no detail')}",
            fix="publish again later; if it persists, the service's operator has the log",
        )
    if response.status_code in (401, 403):
        cls = AccessError
    elif response.status_code == 409 and str(payload.get("type", "")).endswith("/replay"):
        cls = _Replayed
    return cls(
        f"the linkage service refused the batch: {payload.get('title', response.status_code)}"
        f" - {payload.get('detail', '')}",
        fix="see the detail; nothing of the batch was stored",
    )


def _ok(response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise _refusal(response)
    payload: dict[str, Any] = response.json()
    return payload


def upload(
    submission: Submission,
    service_url: str,
    *,
    timeout: float = 60.0,
    chunk_bytes: int = CHUNK_BYTES,
    retries: int = RETRIES,
    auth: Callable[[], Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Send the batch as a resumable upload and commit it; returns the service's answer
    (``batch_id``, ``records``, ``already_stored``). Problems come back as placelink errors.
    ``auth`` gives each request's authorization headers (e.g.
    :meth:`gateway.oauth_client.ClientCredentials.headers`); without it the service refuses."""
    client = _Client(requests.Session(), service_url, timeout, auth)
    with client.http:
        return _Retrying(client, submission, retries).run(chunk_bytes)


@dataclass
class _Retrying:
    client: _Client
    submission: Submission
    retries: int
    failures: int = 0

    def _retry(self, why: _Transient) -> None:
        self.failures += 1
        if self.failures > self.retries:
            raise ServiceUnreachable(
                f"cannot reach the linkage service at {self.client.service_url}: {why}",
                fix="check the service URL and that the service is running, then publish again",
            )
        time.sleep(min(BACKOFF_SECONDS * 2 ** (self.failures - 1), MAX_BACKOFF_SECONDS))

    def _until_ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        while True:
            try:
                answer = _ok(self.client.call(method, path, **kwargs))
                self.failures = 0
                return answer
            except _Transient as why:
                self._retry(why)

    def _open(self, headers: dict[str, str]) -> dict[str, Any]:
        try:
            return self._until_ok("POST", "/v1/uploads", headers=headers)
        except _Replayed as refused:
            raise SubmissionExpired(
                refused.message,
                fix="a batch opens only minutes after it is signed: check the node's clock, then"
                " publish again (a new batch)",
            ) from None

    def run(self, chunk_bytes: int) -> dict[str, Any]:
        sub, length = self.submission, self.submission.body_length
        opening = {**sub.headers(), "Upload-Length": str(length)}
        opening.pop("Content-Type")
        status = self._open(opening)
        path = f"/v1/uploads/{status['batch_id']}"
        signed = {"Placelink-Signature": opening["Placelink-Signature"]}
        offset = int(status["offset"])
        while not status["already_stored"] and offset < length:
            offset = self._send_chunk(path, signed, offset, chunk_bytes)
        if status["already_stored"]:
            kept = ("batch_id", "records", "already_stored", "audit_checkpoint")
            return {key: status[key] for key in kept if key in status}
        wait = (self.client.timeout, max(self.client.timeout, COMMIT_SECONDS))
        return self._until_ok("POST", f"{path}/commit", headers=signed, timeout=wait)

    def _send_chunk(self, path: str, signed: dict[str, str], offset: int, size: int) -> int:
        """Send one chunk at ``offset``; after a failure or an offset conflict, the offset the
        service holds (asked again), from which the next chunk starts."""
        headers = {**signed, "Content-Type": CLKS_MEDIA_TYPE, "Upload-Offset": str(offset)}
        try:
            response = self.client.call(
                "PATCH", path, headers=headers, data=self.submission.read_body(offset, size)
            )
            if response.status_code != 409:
                moved = int(_ok(response)["offset"])
                self.failures = 0
                return moved
            raise _Transient("the offsets disagree")
        except _Transient as why:
            self._retry(why)
        return int(self._until_ok("GET", path, headers=signed)["offset"])
