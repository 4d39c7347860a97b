"""The linkage service's audit trail: what it writes into its hash-chained log (see
:mod:`policies.audit`) for each submission, policy decision, link run, key event and query.

Only facts that identify no one are kept: counts, party ids, field and attribute names, policy
ids, versions and hashes, problem types, the analyst's id (a digest, never the token) and the
canonical query without its free-text measure names. A submission that was refused is recorded
too, with the problem type; a claim in it is kept only when it names what this service knows
(a registered policy, a party of it), so a malicious upload cannot write into the log.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keys import load_signing_key
from keys.signing import SigningKey
from linkage.query_log import QueryEntry
from linkage.revocations import is_fingerprint
from policies.audit import MAX_TEXT, PAYLOAD_KEYS, AuditLog, Checkpoint
from policies.audit_events import AuditRecorder
from policies.audit_store import FileLog, MemoryLog
from policies.model import Policy

SERVICE_ACTOR = "linkage-service"
LOG_VARIABLE = "PLACELINK_AUDIT_LOG"
KEY_VARIABLE = "PLACELINK_SERVICE_KEY"
PASSPHRASE_VARIABLE = "PLACELINK_SERVICE_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
DEFAULT_LOG = "placelink-linkage-audit.jsonl"
# A link run's summary fields that the audit log allows (its allow-list is the authority).
_LINK_RUN_KEYS = sorted(PAYLOAD_KEYS["link_run"] - {"status", "problem"})


def default_log_path(database_url: str) -> str:
    """Beside an embedded SQLite database (``X.db`` -> ``X.db.audit.jsonl``); otherwise
    ``placelink-linkage-audit.jsonl`` in the working folder. Production sets PLACELINK_AUDIT_LOG."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url != prefix + ":memory:":
        return database_url.removeprefix(prefix) + ".audit.jsonl"
    return DEFAULT_LOG


def service_key_from_environment() -> SigningKey | None:
    """The service's checkpoint key (PLACELINK_SERVICE_KEY, a PKCS #8 PEM file encrypted under
    PLACELINK_SERVICE_KEY_PASSPHRASE), or None when it is not set."""
    path = os.environ.get(KEY_VARIABLE, "")
    if not path:
        return None
    passphrase = os.environ.get(PASSPHRASE_VARIABLE) or None
    return load_signing_key(Path(path), passphrase=passphrase)


class ServiceAudit(AuditRecorder):
    """The service's log: the decision recorder, the ``on_query`` hook and explicit events."""

    def __init__(self, log: AuditLog, policies: Mapping[str, Policy]) -> None:
        super().__init__(log, {pid: p.version for pid, p in policies.items()})
        self.policies = dict(policies)

    @classmethod
    def open(
        cls, path: str, *, key: SigningKey | None, policies: Mapping[str, Policy]
    ) -> ServiceAudit:
        """A file log at ``path`` (several worker processes may share it), or in memory
        when ``path`` is empty (tests)."""
        backend = FileLog(Path(path)) if path else MemoryLog()
        return cls(AuditLog(backend, actor=SERVICE_ACTOR, signer=key), policies)

    def _policy(self, policy_id: str | None) -> tuple[str | None, str | None]:
        """(id, version) of a registered policy; (None, None) for a claim of any other."""
        known = policy_id if policy_id in self.policies else None
        return known, self.versions.get(known or "")

    def query(self, entry: QueryEntry) -> None:
        """The ``Store.on_query`` hook: one entry per hot-spot query, answered or refused."""
        query = entry.query
        payload = {
            "analyst": entry.analyst,
            "policy_hash": entry.policy_hash,
            "link_run": entry.link_run,
            "query_kind": query.get("kind"),
            "by": query.get("by"),
            "filter": query.get("filter"),
            "measures": [
                {k: v for k, v in m.items() if k != "name"} for m in query.get("measures", [])
            ],
            "decision": entry.decision,
            "reason": entry.reason[:MAX_TEXT],
            "epsilon": entry.epsilon,
            "treatments": dict(entry.treatments),
        }
        self.log.append(
            "query", payload, policy_id=entry.policy_id, policy_version=entry.policy_version
        )

    def submission(
        self, *, status: int, problem: str | None, manifest: Mapping[str, Any], size: int | None
    ) -> Checkpoint | None:
        """One upload, accepted or refused; an accepted one is checkpointed at once and the
        checkpoint returned (the gateway keeps it)."""
        policy = self.policies.get(str(manifest.get("policy_id")))
        sources = {p.id for p in policy.parties} if policy else set()
        accepted = status in (200, 201)
        payload = {
            "outcome": "accepted" if status == 201 else "already_stored" if accepted else "refused",
            "status": status,
            "problem": problem,
            "source": manifest.get("source") if manifest.get("source") in sources else None,
            "epoch": _integer(manifest.get("epoch")),
            "records": _integer(manifest.get("record_count")),
            "batch_id": str(manifest.get("batch_id"))[:MAX_TEXT] if accepted else None,
            "bytes": size,
        }
        pid, version = self._policy(policy.policy_id if policy else None)
        self.log.append("submission", payload, policy_id=pid, policy_version=version)
        return self.log.checkpoint() if accepted else None

    def link_run(
        self, policy_id: str, *, status: int, problem: str | None, summary: Mapping[str, Any]
    ) -> None:
        """One link run; an epoch retirement it caused is also a key event. Checkpointed."""
        pid, version = self._policy(policy_id)
        payload = {k: summary[k] for k in _LINK_RUN_KEYS if k in summary}
        self.log.append(
            "link_run",
            {**payload, "status": status, "problem": problem},
            policy_id=pid,
            policy_version=version,
        )
        if summary.get("retired_batches"):
            event = {
                "event": "epoch_retirement",
                "epoch": summary.get("epoch"),
                "retired_batches": summary["retired_batches"],
            }
            self.log.append("key_event", event, policy_id=pid, policy_version=version)
        self.log.checkpoint()

    def revocation(self, *, node_key: Any, status: int) -> None:
        """A node key revoked (or an attempt refused)."""
        fingerprint = node_key if isinstance(node_key, str) and is_fingerprint(node_key) else None
        payload = {"event": "revocation", "node_key": fingerprint, "status": status}
        self.log.append("key_event", payload, checkpoint=status == 201)


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def lenient_manifest(header: str | None) -> dict[str, Any]:
    """The manifest header decoded for the log, or {} when it is not one (then nothing the
    uploader claimed is recorded)."""
    if not header:
        return {}
    try:
        manifest = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


__all__ = [
    "DEFAULT_LOG",
    "ServiceAudit",
    "default_log_path",
    "lenient_manifest",
    "service_key_from_environment",
]
