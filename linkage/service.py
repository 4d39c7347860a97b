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
from linkage.corpus import EncodedCorpus, build_corpus
from linkage.disclosure import Published
from linkage.engine import Engine, LinkResult, LocalEngine, PreviousLinkage
from linkage.epochs import complete_epochs, epoch_to_link
from linkage.fellegi_sunter import model_from_json, model_to_json
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
        *,
        migrate: bool = True,
    ) -> LinkageService:
        """A service over a database, the policies it serves and the schemas they pin; the
        database is migrated to head first unless ``migrate`` is False."""
        store = Store(database_url, migrate=migrate)
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

    def _previous(
        self, policy_id: str, epoch: int, corpus: EncodedCorpus, row_ids: list[int]
    ) -> PreviousLinkage | None:
        """The latest run's entities (by member key) and model, for an incremental run."""
        summary = self.store.latest_run_summary(policy_id, epoch)
        memberships = self.store.memberships(policy_id)
        if summary is None or "model" not in summary or not memberships:
            return None
        entities = {
            corpus.member_key(row): memberships[rid]
            for row, rid in enumerate(row_ids)
            if rid in memberships
        }
        return PreviousLinkage(entities, model_from_json(summary["model"]))

    def _epoch_to_link(self, policy: Policy, epoch: int | None) -> tuple[int, dict[int, set[str]]]:
        """The epoch a run links (by default the newest all providers have published, see
        :mod:`linkage.epochs`), refusing a retired one; and the sources seen per epoch."""
        by_epoch = self.store.key_state.sources_by_epoch(policy.policy_id)
        floor = self.store.key_state.epoch_floor(policy.policy_id)
        if epoch is None:
            return epoch_to_link(policy, by_epoch, floor), by_epoch
        if epoch < floor:
            raise PolicyError(
                f"epoch {epoch} of policy {policy.policy_id!r} was retired",
                fix=f"link epoch {floor} or later",
            )
        return epoch, by_epoch

    def run_linkage(
        self, policy_id: str, *, epoch: int | None = None, incremental: bool = False
    ) -> dict[str, Any]:
        """Link every stored record of one epoch of the policy; replace the entity memberships.
        Epochs are never mixed; after linking a complete epoch, older epochs are retired.

        Incremental: records of the latest run keep their entities and that run's model; only
        pairs involving records stored since are compared, and entity ids stay stable."""
        policy = self.policy(policy_id)
        require(policy, Request("link", "linkage_service"), recorder=self.decisions)
        epoch, by_epoch = self._epoch_to_link(policy, epoch)
        stored = self.store.batches(policy_id, epoch)
        if not stored:
            raise InputError(
                f"no batches are stored under policy {policy_id!r}, epoch {epoch}",
                fix="publish from the gateways first",
            )
        corpus = build_corpus([(source, batch) for source, batch, _ in stored])
        row_ids = [rid for _, _, ids in stored for rid in ids]
        previous = self._previous(policy_id, epoch, corpus, row_ids) if incremental else None
        result = self.engine.link(corpus, previous=previous)
        summary = _run_summary(epoch, corpus, result, incremental=previous is not None)
        stored_summary = dict(summary)
        if result.model is not None:  # kept for the next incremental run, not released
            stored_summary["model"] = model_to_json(result.model)
        self.store.replace_memberships(
            policy_id, epoch, dict(zip(row_ids, result.entity_ids, strict=True)), stored_summary
        )
        if epoch in complete_epochs(policy, by_epoch) and min(by_epoch) < epoch:
            summary["retired_batches"] = self.store.key_state.retire_epochs_before(policy_id, epoch)
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


def _run_summary(
    epoch: int, corpus: EncodedCorpus, result: LinkResult, *, incremental: bool
) -> dict[str, Any]:
    """What a link run reports (to the operator; no record-level data)."""
    return {
        "epoch": epoch,
        "records": len(corpus),
        "sources": list(corpus.source_names),
        "entities": result.entity_count,
        "multi_agency_entities": _multi_agency(result.entity_ids, corpus.source_index.tolist()),
        "candidate_pairs": result.candidate_pairs,
        "reduction_ratio": result.reduction_ratio,
        "threshold": result.threshold,
        "links": result.links,
        "refused_merges": result.refused_merges,
        "model_estimated": bool(result.model and result.model.estimated),
        "cluster_sizes": {str(k): v for k, v in result.cluster_sizes.items()},
        "largest_cluster": result.largest_cluster,
        "incremental": incremental,
    }
