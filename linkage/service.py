"""The linkage service's domain operations, free of any web framework: link a policy's
records into entities, and answer hot-spot queries under disclosure control.

The policies it is given must already be trusted (approved by trusted DPOs, in force): the
app loads them with :func:`policies.approvals.load_trusted_policy`. Every request is decided
by the policy's rules and the decision recorded (``decisions``: the audit log's seam).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keys.errors import InputError, PolicyError
from linkage.corpus import build_corpus
from linkage.disclosure import Published
from linkage.engine import Engine, LocalEngine
from linkage.epochs import complete_epochs, epoch_to_link
from linkage.hotspots import Measure, published_table
from linkage.storage import Store
from policies.canonical import jsonable
from policies.decisions import released_attributes, require
from policies.linkage_schema import LinkageSchema
from policies.model import Policy, Request
from policies.rules import DecisionRecorder, MemoryDecisionLog


@dataclass
class LinkageService:
    store: Store
    policies: dict[str, Policy]
    schemas: dict[str, LinkageSchema]
    engine: Engine
    decisions: DecisionRecorder = field(default_factory=MemoryDecisionLog)

    @classmethod
    def create(
        cls,
        database_url: str,
        policies: list[Policy],
        schemas: list[LinkageSchema],
        engine: Engine | None = None,
    ) -> LinkageService:
        """A service over a database, the policies it serves and the schemas they pin."""
        store = Store(database_url)
        for policy in policies:
            store.register_policy(
                policy.policy_id, policy.version, policy.policy_hash, jsonable(policy.document)
            )
        return cls(
            store,
            {p.policy_id: p for p in policies},
            {s.sha256: s for s in schemas},
            engine or LocalEngine(),
        )

    def policy(self, policy_id: str) -> Policy:
        policy = self.policies.get(policy_id)
        if policy is None:
            raise PolicyError(
                f"no policy {policy_id!r} is registered here",
                fix="use the id of a registered policy",
            )
        return policy

    def run_linkage(self, policy_id: str, *, epoch: int | None = None) -> dict[str, Any]:
        """Link every stored record of one epoch of the policy (by default the newest epoch all
        providers have published, see :mod:`linkage.epochs`); replace the entity memberships.
        Epochs are never mixed; after linking a complete epoch, older epochs are retired."""
        policy = self.policy(policy_id)
        require(policy, Request("link", "linkage_service"), recorder=self.decisions)
        by_epoch = self.store.sources_by_epoch(policy_id)
        floor = self.store.epoch_floor(policy_id)
        if epoch is None:
            epoch = epoch_to_link(policy, by_epoch, floor)
        elif epoch < floor:
            raise PolicyError(
                f"epoch {epoch} of policy {policy_id!r} was retired",
                fix=f"link epoch {floor} or later",
            )
        stored = self.store.batches(policy_id, epoch)
        if not stored:
            raise InputError(
                f"no batches are stored under policy {policy_id!r}, epoch {epoch}",
                fix="publish from the gateways first",
            )
        corpus = build_corpus([(source, batch) for source, batch, _ in stored])
        result = self.engine.link(corpus)
        row_ids = [rid for _, _, ids in stored for rid in ids]
        summary = {
            "epoch": epoch,
            "records": len(corpus),
            "sources": list(corpus.source_names),
            "entities": result.entity_count,
            "multi_agency_entities": _multi_agency(result.entity_ids, corpus.source_index.tolist()),
            "candidate_pairs": result.candidate_pairs,
            "links": result.links,
            "cluster_sizes": {str(k): v for k, v in result.cluster_sizes.items()},
            "largest_cluster": result.largest_cluster,
        }
        self.store.replace_memberships(
            policy_id, epoch, dict(zip(row_ids, result.entity_ids, strict=True)), summary
        )
        if epoch in complete_epochs(policy, by_epoch) and min(by_epoch) < epoch:
            summary["retired_batches"] = self.store.retire_epochs_before(policy_id, epoch)
        return summary

    def entity_links(self, policy_id: str, source: str) -> list[tuple[str, str]]:
        """One provider's pseudonyms and their entities, for that provider to resolve locally."""
        policy = self.policy(policy_id)
        party = policy.party(source)
        if party.role != "provider":
            raise PolicyError(
                f"{source!r} is not a provider of policy {policy_id!r}",
                fix="ask for the links of a providing party",
            )
        require(policy, Request("view_links", source), recorder=self.decisions)
        return self.store.entity_links(policy_id, source)

    def hotspots(
        self, policy_id: str, measures: list[Measure], *, by: str = "area"
    ) -> list[dict[str, Published]]:
        """Disclosure-controlled counts per area; only attributes the policy releases may group."""
        policy = self.policy(policy_id)
        released = {a.name: a for a in released_attributes(policy)}
        if by not in released:
            raise PolicyError(
                f"policy {policy_id!r} releases no attribute {by!r} to group by",
                fix=f"group by one of {', '.join(released) or 'nothing'}",
            )
        require(policy, Request("view_hotspots", "recipient", by=by), recorder=self.decisions)
        month = next((a.name for a in released.values() if a.generalisation == "month"), "")
        records = self.store.entity_records(policy_id, by, month)
        return published_table(records, measures, policy.disclosure)


def _multi_agency(entity_ids: list[str], sources: list[int]) -> int:
    """Entities with records from two or more sources."""
    seen: dict[str, set[int]] = {}
    for entity, source in zip(entity_ids, sources, strict=True):
        seen.setdefault(entity, set()).add(source)
    return sum(1 for found in seen.values() if len(found) > 1)
