"""Every hot-spot query is a policy decision and an audit entry.

:class:`QueryEntry` is what the service records for each query, answered or refused, in the
``queries`` table (:meth:`linkage.storage.Store.record_query`): who asked (the analyst id: the
OAuth client's id, never the token), what (the canonical query: filters and measures,
never a person's value), under which policy version and hash and which link run, the decision
and its reason, the privacy budget spent, and how many cells each disclosure treatment hit.

Seam for the hash-chained audit log (a later issue): :meth:`QueryEntry.audit_record` is the
JSON-ready entry to append; the store calls the ``on_query`` hooks it is given after each
commit, so the chain can subscribe without this module changing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["answered", "refused"]


def analyst_id(client_id: str) -> str:
    """A stable, non-secret name for who asked: the OAuth client the token was issued to
    (the operator's name for it in the clients file; the token itself is never logged).
    The privacy budget is charged to this name, per policy."""
    return "client:" + client_id


@dataclass(frozen=True)
class QueryEntry:
    analyst: str
    policy_id: str
    policy_version: str
    policy_hash: str
    link_run: int | None
    query: dict[str, Any]
    decision: Decision
    reason: str = ""
    epsilon: float = 0.0
    treatments: dict[str, int] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def audit_record(self) -> dict[str, Any]:
        """The entry as the audit log will hold it."""
        return {
            "event": "hotspot_query",
            "at": self.at.isoformat(),
            "analyst": self.analyst,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash,
            "link_run": self.link_run,
            "query": self.query,
            "decision": self.decision,
            "reason": self.reason,
            "epsilon": self.epsilon,
            "treatments": self.treatments,
        }
