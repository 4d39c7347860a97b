"""The linkage service's domain operations, free of any web framework: link a policy's
records into entities, and answer hot-spot queries under disclosure control."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keys.errors import InputError, PolicyError
from linkage.corpus import build_corpus
from linkage.disclosure import Published
from linkage.engine import Engine, LocalEngine
from linkage.hotspots import Measure, published_table
from linkage.storage import Store
from policies.canonical import jsonable
from policies.decisions import released_attributes
from policies.linkage_schema import LinkageSchema
from policies.model import Policy


@dataclass
class LinkageService:
    store: Store
    policies: dict[str, Policy]
    schemas: dict[str, LinkageSchema]
    engine: Engine

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

    def run_linkage(self, policy_id: str, *, epoch: int = 0) -> dict[str, Any]:
        """Link every stored record of the policy and epoch; replace the entity memberships."""
        self.policy(policy_id)
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
        return self.store.entity_links(policy_id, source)

    def hotspots(
        self, policy_id: str, measures: list[Measure], *, by: str = "area"
    ) -> list[dict[str, Published]]:
        """Disclosure-controlled counts per area; only attributes the policy releases may group.

        The walking skeleton's in-process table (primary suppression only, nothing recorded).
        Analysts' queries go through :class:`linkage.hotspot_desk.HotspotDesk`, which adds
        secondary suppression, differencing control, budgets and the query record."""
        policy = self.policy(policy_id)
        released = {a.name: a for a in released_attributes(policy)}
        if by not in released:
            raise PolicyError(
                f"policy {policy_id!r} releases no attribute {by!r} to group by",
                fix=f"group by one of {', '.join(released) or 'nothing'}",
            )
        month = next((a.name for a in released.values() if a.generalisation == "month"), "")
        records = self.store.entity_records(policy_id, by, month)
        return published_table(records, measures, policy.disclosure)


def _multi_agency(entity_ids: list[str], sources: list[int]) -> int:
    """Entities with records from two or more sources."""
    seen: dict[str, set[int]] = {}
    for entity, source in zip(entity_ids, sources, strict=True):
        seen.setdefault(entity, set()).add(source)
    return sum(1 for found in seen.values() if len(found) > 1)
