"""What each side writes into its audit log, built from facts that identify no one.

:class:`AuditRecorder` is the :class:`policies.rules.DecisionRecorder` both sides hand to the
policy checks: every decision (action, party, data item, ``by``, outcome, deciding rule ids and
policy hash) becomes a ``decision`` entry. :meth:`GatewayAudit.published` is the gateway's entry for
a batch that left the agency: counts and names (fields, attributes), never values, pseudonyms or
encodings; with the service's signed checkpoint that came back with the upload, which the
gateway also keeps beside its log so that it can later prove the service's log extends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from keys.errors import InputError
from keys.signing import SigningKey
from policies.audit import AuditLog, Checkpoint
from policies.audit_store import FileLog
from policies.clks import EncodedBatch
from policies.model import Policy
from policies.rules import Decision

GATEWAY_LOG = "audit.jsonl"
SERVICE_CHECKPOINTS = "service-checkpoints.jsonl"


class AuditRecorder:
    """A DecisionRecorder that appends each decision to an audit log."""

    def __init__(self, log: AuditLog, versions: Mapping[str, str]) -> None:
        self.log = log
        self.versions = dict(versions)  # policy id -> version, for the entry's policy_version

    def record(self, decision: Decision) -> None:
        request = decision.request
        payload = {
            "action": request.action,
            "party": request.party,
            "data_item": request.data_item,
            "by": request.by,
            "purpose": request.purpose,
            "outcome": decision.outcome,
            "rules": list(decision.rules),
            "policy_hash": decision.policy_hash,
        }
        self.log.append(
            "decision",
            payload,
            policy_id=decision.policy_id,
            policy_version=self.versions.get(decision.policy_id),
        )


def destination(url: str) -> str:
    """Scheme, host and port of a URL (never a path, query or user name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class Sent(Protocol):
    """What the gateway sent: the signed manifest and the body's size (all that is recorded)."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def body_length(self) -> int: ...


class GatewayAudit:
    """A gateway node's audit log: ``audit.jsonl`` in its state folder, checkpoints signed by
    the node key; the service's checkpoints it receives go to ``service-checkpoints.jsonl``."""

    def __init__(self, state_dir: Path, *, source: str, node_key: SigningKey) -> None:
        backend = FileLog(state_dir / GATEWAY_LOG)
        self.log = AuditLog(backend, actor=f"gateway:{source}", signer=node_key)
        self.checkpoints_file = state_dir / SERVICE_CHECKPOINTS

    def recorder(self, policy: Policy) -> AuditRecorder:
        """The decision recorder for the gateway's own check of an upload."""
        return AuditRecorder(self.log, {policy.policy_id: policy.version})

    def published(
        self,
        policy: Policy,
        batch: EncodedBatch,
        sent: Sent,
        service_url: str,
        response: Mapping[str, Any],
    ) -> Checkpoint | None:
        """Append the publication (and a checkpoint of this log); keep the service's
        checkpoint that came back with the upload, if any, and return it."""
        received = _service_checkpoint(response)
        payload: dict[str, Any] = {
            "policy_hash": policy.policy_hash,
            "schema_hash": batch.schema_hash,
            "epoch": batch.epoch,
            "records": len(batch),
            "fields": [f.name for f in batch.fields],
            "attributes": list(batch.attribute_names),
            "batch_id": str(sent.manifest["batch_id"]),
            "bytes": sent.body_length,
            "destination": destination(service_url),
        }
        if received is not None:
            payload |= {
                "service_seq": received.seq,
                "service_head": received.head,
                "service_signer": received.signer,
            }
            self._keep(received)
        self.log.append(
            "publication",
            payload,
            policy_id=policy.policy_id,
            policy_version=policy.version,
            checkpoint=True,
        )
        return received

    def _keep(self, checkpoint: Checkpoint) -> None:
        self.checkpoints_file.parent.mkdir(parents=True, exist_ok=True)
        with self.checkpoints_file.open("a", encoding="utf-8") as file:
            file.write(json.dumps(checkpoint.to_json(), sort_keys=True) + "\n")


def _service_checkpoint(response: Mapping[str, Any]) -> Checkpoint | None:
    raw = response.get("audit_checkpoint")
    if not isinstance(raw, Mapping):
        return None
    try:
        return Checkpoint.from_json(raw)
    except InputError:
        return None


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Checkpoints kept one JSON object a line (as :func:`record_publication` writes them)."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise InputError(
                f"{path}, line {number}: not a JSON checkpoint",
                fix="keep checkpoints as the gateway wrote them",
            ) from None
        found.append(Checkpoint.from_json(data))
    return found
