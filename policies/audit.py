"""The hash-chained audit log both sides keep: one implementation for gateway and service.

An entry is one JSON object, written as its RFC 8785 canonical form on one line:
``seq`` (0, 1, 2... with no gap), ``time`` (UTC), ``kind`` (what happened, see
:data:`PAYLOAD_KEYS`), ``actor`` (``gateway:health``, ``linkage-service``), the ``policy_id``
and ``policy_version`` it happened under (or null), a ``payload`` of non-identifying facts,
``prev_hash`` (the previous entry's hash; 64 zeros for the first) and ``entry_hash``: hex
SHA-256 over the canonical JSON of the entry without ``entry_hash``. Editing, dropping,
inserting or reordering an entry breaks the chain at that entry (see :mod:`policies.audit_verify`).

Whoever can write the file could rewrite the whole chain; **checkpoints** stop that. A checkpoint
is an entry of kind ``checkpoint`` carrying a statement signed by the log's owner (a gateway's
node key, the service's key): "entry ``covers_seq`` of this log has hash ``head``". Anyone
holding a checkpoint (the gateway holds the service's, returned with each upload) can later prove
that a presented log still extends it. Checkpoints are made every ``checkpoint_every`` entries
and on demand.

Entries never hold identifiers or encodings: each kind has an allow-list of payload keys and
every string is short (:func:`check_payload`); a payload that breaks either is refused before
anything is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keys.errors import InputError, KeyMaterialError
from keys.signing import SigningKey, fingerprint, verify_signature
from policies.audit_store import LogBackend
from policies.canonical import canonical_json

GENESIS = "0" * 64
CHECKPOINT_PURPOSE = "placelink-audit-checkpoint-v1"
ENTRY_KEYS = frozenset(
    {
        "seq",
        "time",
        "kind",
        "actor",
        "policy_id",
        "policy_version",
        "payload",
        "prev_hash",
        "entry_hash",
    }
)
MAX_TEXT = 160  # an encoding (a Bloom filter, a token list) never fits; a field name always does
_DECISION = {"action", "party", "data_item", "by", "purpose", "outcome", "rules", "policy_hash"}
PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    "publication": frozenset(
        {
            "policy_hash",
            "schema_hash",
            "epoch",
            "records",
            "fields",
            "attributes",
            "batch_id",
            "bytes",
            "destination",
            "service_seq",
            "service_head",
            "service_signer",
        }
    ),
    "submission": frozenset(
        {"outcome", "status", "problem", "source", "epoch", "records", "batch_id", "bytes"}
    ),
    "decision": frozenset(_DECISION),
    "link_run": frozenset(
        {
            "epoch",
            "records",
            "sources",
            "entities",
            "multi_agency_entities",
            "candidate_pairs",
            "links",
            "incremental",
            "retired_batches",
            "status",
            "problem",
        }
    ),
    "key_event": frozenset(
        {"event", "node_key", "epoch", "retired_batches", "shares", "threshold", "status"}
    ),
    "query": frozenset(
        {
            "analyst",
            "policy_hash",
            "link_run",
            "query_kind",
            "by",
            "filter",
            "measures",
            "decision",
            "reason",
            "epsilon",
            "treatments",
        }
    ),
    "checkpoint": frozenset({"covers_seq", "head", "signer", "public_key", "signature"}),
}


def entry_hash(entry: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``entry`` without its ``entry_hash``."""
    body = {key: value for key, value in entry.items() if key != "entry_hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def check_payload(kind: str, payload: Mapping[str, Any]) -> None:
    """Refuse a payload that could carry an identifier or an encoding: a kind not known, a key
    not on the kind's allow-list, a string longer than MAX_TEXT, or a value not plain JSON."""
    allowed = PAYLOAD_KEYS.get(kind)
    if allowed is None:
        raise InputError(
            f"audit entry kind {kind!r} is not known", fix=f"use one of {', '.join(PAYLOAD_KEYS)}"
        )
    for key, value in payload.items():
        if key not in allowed:
            raise InputError(
                f"audit payload key {key!r} is not allowed for kind {kind!r}",
                fix=f"record only {', '.join(sorted(allowed))}",
            )
        _check_value(f"{kind}.{key}", value)


def _check_value(where: str, value: Any) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise InputError(
                f"audit payload {where} is longer than {MAX_TEXT} characters",
                fix="record counts and names, never values or encodings",
            )
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(where, item)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(f"{where}.{key}", str(key))
            _check_value(f"{where}.{key}", item)
        return
    raise InputError(f"audit payload {where} is not plain JSON", fix="record numbers and names")


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: entry ``seq`` of the signer's log has hash ``head``."""

    seq: int
    head: str
    time: str
    signer: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        """The signed bytes: canonical JSON of purpose, seq, head, time and signer."""
        statement = {
            "purpose": CHECKPOINT_PURPOSE,
            "seq": self.seq,
            "head": self.head,
            "time": self.time,
            "signer": self.signer,
        }
        return canonical_json(statement)

    @classmethod
    def signed(cls, key: SigningKey, *, seq: int, head: str, time: str) -> Checkpoint:
        unsigned = cls(seq, head, time, key.fingerprint, key.public_raw.hex(), "")
        signature = base64.b64encode(key.sign(unsigned.message())).decode("ascii")
        return cls(seq, head, time, key.fingerprint, key.public_raw.hex(), signature)

    def problem(self, trusted_keys: frozenset[str]) -> str | None:
        """Why this checkpoint cannot be trusted, or None: (1) its public key is the signer it
        names, (2) that signer is trusted, (3) the signature verifies."""
        try:
            raw = bytes.fromhex(self.public_key)
            signature = base64.b64decode(self.signature, validate=True)
        except ValueError:
            return "its public key or signature is not well formed"
        if fingerprint(raw) != self.signer:
            return "its public key is not the signer it names"
        if self.signer not in trusted_keys:
            return "it is signed by a key that is not trusted"
        try:
            verify_signature(raw, signature, self.message())
        except KeyMaterialError:
            return "its signature does not verify"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head": self.head,
            "time": self.time,
            "signer": self.signer,
            "public_key": self.public_key,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        try:
            return cls(
                int(data["seq"]),
                str(data["head"]),
                str(data["time"]),
                str(data["signer"]),
                str(data["public_key"]),
                str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "a checkpoint lacks seq, head, time, signer, public_key or signature",
                fix="keep checkpoints as the service returns them",
            ) from None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Checkpoint:
        payload = entry["payload"]
        return cls.from_json({**payload, "seq": payload["covers_seq"], "time": entry["time"]})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditLog:
    """Appends entries to a backend, chaining each to the one before and checkpointing.

    ``signer`` signs checkpoints; without one, entries are chained but never checkpointed
    (anyone able to write the log could then rewrite it: give the log a key)."""

    def __init__(
        self,
        backend: LogBackend,
        *,
        actor: str,
        signer: SigningKey | None,
        checkpoint_every: int = 64,
        now: Callable[[], dt.datetime] = _now,
    ) -> None:
        if checkpoint_every < 1:
            raise InputError("checkpoint_every must be at least 1", fix="use 64")
        self.backend = backend
        self.actor = actor
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.now = now

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        policy_id: str | None = None,
        policy_version: str | None = None,
        checkpoint: bool = False,
    ) -> dict[str, Any]:
        """Chain one entry (and a checkpoint when one is due or asked for); return the entry."""
        if kind == "checkpoint":
            raise InputError("checkpoints are made by the log", fix="call checkpoint()")
        check_payload(kind, payload)
        made: list[dict[str, Any]] = []

        def build(head: Mapping[str, Any] | None) -> list[dict[str, Any]]:
            entry = self._entry(head, kind, dict(payload), policy_id, policy_version)
            made.append(entry)
            due = checkpoint or (entry["seq"] + 1) % self.checkpoint_every == 0
            return [entry, *self._checkpoint_entries(entry, due)]

        self.backend.append(build)
        return made[0]

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None when the log is empty or has no key)."""
        if self.signer is None:
            return None
        made: list[dict[str, Any]] = []

        def build(head: Mapping[str, Any] | None) -> list[dict[str, Any]]:
            if head is None:
                return []
            if head["kind"] == "checkpoint":
                made.append(dict(head))
                return []
            made.extend(self._checkpoint_entries(head, True))
            return made

        self.backend.append(build)
        return Checkpoint.from_entry(made[0]) if made else None

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint in the log, oldest first."""
        return [Checkpoint.from_entry(e) for e in self.backend.entries() if _is_checkpoint(e)]

    def _entry(
        self,
        head: Mapping[str, Any] | None,
        kind: str,
        payload: dict[str, Any],
        policy_id: str | None,
        policy_version: str | None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": 0 if head is None else int(head["seq"]) + 1,
            "time": self.now().astimezone(dt.UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "actor": self.actor,
            "policy_id": policy_id,
            "policy_version": policy_version,
            "payload": payload,
            "prev_hash": GENESIS if head is None else str(head["entry_hash"]),
        }
        entry["entry_hash"] = entry_hash(entry)
        return entry

    def _checkpoint_entries(self, covered: Mapping[str, Any], due: bool) -> list[dict[str, Any]]:
        if not due or self.signer is None:
            return []
        time = self.now().astimezone(dt.UTC).isoformat(timespec="milliseconds")
        signed = Checkpoint.signed(
            self.signer, seq=int(covered["seq"]), head=str(covered["entry_hash"]), time=time
        )
        payload = {
            "covers_seq": signed.seq,
            "head": signed.head,
            "signer": signed.signer,
            "public_key": signed.public_key,
            "signature": signed.signature,
        }
        entry = self._entry(covered, "checkpoint", payload, None, None)
        entry["time"] = time
        entry["entry_hash"] = entry_hash(entry)
        return [entry]


def _is_checkpoint(entry: Mapping[str, Any]) -> bool:
    return entry.get("kind") == "checkpoint"
