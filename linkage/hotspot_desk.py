"""The hot-spot desk: takes an analyst's query to a published answer, and records the decision.

The checklist, in order, for every query:

1. the policy is registered here and in force today, else refused;
2. the query parses against the policy's vocabulary (its area attribute, provider agencies
   and declared flags), else refused naming the field; then the ``authorise`` hook, where
   given, takes the policy's rule decision (the service passes one that decides the request
   ``view_hotspots`` by the grouping attribute under the policy's permissions and
   prohibitions, and records it) and raises to refuse;
3. true counts come from the link run's in-memory index (:mod:`linkage.hotspot_index`);
4. without a privacy budget, cells whose population differs from an earlier answer's by 1 to
   min_cell-1 entities are refused (:mod:`linkage.differencing`); with one, the query costs
   ``epsilon_per_query`` and its counts get OpenDP noise (:mod:`linkage.privacy`);
5. every count is published under the disclosure rule with secondary suppression
   (:func:`linkage.disclosure.protect`);
6. the decision is recorded (who, what, policy version and hash, budget spent, treatments) in
   the same transaction as the budget debit; an overspend is refused and recorded as such.

Nothing is returned before step 6 has committed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from keys.errors import PlacelinkError, PolicyError
from linkage.differencing import HISTORY, Keyed
from linkage.hotspot_answers import RULE, HotspotAnswer, PolicyRef
from linkage.hotspot_figures import Figures, compute_figures, population_key
from linkage.hotspot_index import HotspotIndex
from linkage.hotspot_query import HotspotQuery, QueryVocabulary, parse_query
from linkage.privacy import MECHANISM, PrivacyBudget, noise_scale, privacy_budget
from linkage.query_log import QueryEntry
from linkage.storage import BudgetSpent, Store
from policies.decisions import check_in_force, released_attributes
from policies.model import Policy

AREA_GENERALISATIONS = ("postcode_sector", "postcode_district")
_KEY_CACHE_BYTES = 512 * 2**20  # populations kept for differencing, per process


class PrivacyBudgetSpent(PolicyError):
    """The analyst's privacy budget under this policy cannot pay for another query."""


def vocabulary(policy: Policy) -> QueryVocabulary:
    """What a query may name under this policy."""
    released = released_attributes(policy)
    area = next((a.name for a in released if a.generalisation in AREA_GENERALISATIONS), "")
    if not area:
        raise PolicyError(
            f"policy {policy.policy_id!r} releases no area attribute to group hot-spots by",
            fix="declare a data item generalised to postcode_sector or postcode_district",
        )
    agencies = tuple(p.id for p in policy.parties if p.role == "provider")
    flags = tuple(a.name for a in released if a.generalisation == "flag")
    return QueryVocabulary(area, agencies, flags)


def month_attribute(policy: Policy) -> str:
    return next((a.name for a in released_attributes(policy) if a.generalisation == "month"), "")


class HotspotDesk:
    """Answers hot-spot queries for the policies a service holds; see the module docstring."""

    def __init__(
        self,
        store: Store,
        policies: dict[str, Policy],
        *,
        authorise: Callable[[Policy, str], None] | None = None,
    ) -> None:
        self.store, self.policies = store, policies
        self._authorise = authorise
        self._indexes: dict[str, tuple[int | None, HotspotIndex]] = {}
        self._keys: OrderedDict[tuple[Any, ...], Keyed] = OrderedDict()
        self._references: dict[str, PolicyRef] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def policy(self, policy_id: str, today: dt.date) -> Policy:
        policy = self.policies.get(policy_id)
        if policy is None:
            raise PolicyError(
                f"no policy {policy_id!r} is registered here",
                fix="use the id of a registered policy",
            )
        check_in_force(policy, today=today)
        return policy

    def _reference(self, policy: Policy) -> PolicyRef:
        """Id, version and hash (hashed once: canonical JSON of the whole policy)."""
        with self._lock:
            cached = self._references.get(policy.policy_id)
        if cached is None or cached.version != policy.version:
            cached = PolicyRef(policy.policy_id, policy.version, policy.policy_hash)
            with self._lock:
                self._references[policy.policy_id] = cached
        return cached

    def index(self, policy: Policy) -> tuple[int | None, HotspotIndex]:
        """The index of the policy's latest link run, built once per run and process."""
        run = self.store.latest_link_run(policy.policy_id)
        with self._lock:
            cached = self._indexes.get(policy.policy_id)
        if cached is not None and cached[0] == run:
            return cached
        with self._build_lock:  # one build at a time: concurrent first queries wait for it
            with self._lock:
                cached = self._indexes.get(policy.policy_id)
            if cached is not None and cached[0] == run:
                return cached
            words = vocabulary(policy)
            rows = self.store.index_rows(
                policy.policy_id, words.area_attribute, month_attribute(policy), words.flags
            )
            index = HotspotIndex.from_rows(rows, agencies=words.agencies, flags=words.flags)
            with self._lock:
                self._indexes[policy.policy_id] = (run, index)
            return run, index

    def set_index(self, policy_id: str, run: int | None, index: HotspotIndex) -> None:
        """Install a prebuilt index (benchmarks build one straight from arrays)."""
        with self._lock:
            self._indexes[policy_id] = (run, index)

    def options(self, policy_id: str, *, today: dt.date | None = None) -> dict[str, Any]:
        """What the dashboard offers: agencies, flags, areas and months of the latest run."""
        policy = self.policy(policy_id, today or dt.date.today())
        run, index = self.index(policy)
        budget = privacy_budget(policy)
        return {
            "policy_id": policy.policy_id,
            "policy_version": policy.version,
            "by": vocabulary(policy).area_attribute,
            "agencies": list(index.agencies),
            "flags": list(index.flags),
            "areas": list(index.areas),
            "months": list(index.months),
            "link_run": run,
            "disclosure": _disclosure(policy, budget, None),
        }

    def answer(
        self, analyst: str, policy_id: str, raw: Any, *, today: dt.date | None = None
    ) -> HotspotAnswer:
        """Steps 1-6 of the module docstring; every refusal is recorded, then raised."""
        ref = PolicyRef(policy_id, "", "")
        query: dict[str, Any] = (
            {"kind": str(raw.get("kind", "table"))[:20]} if isinstance(raw, dict) else {}
        )
        try:
            policy = self.policy(policy_id, today or dt.date.today())
            ref = self._reference(policy)
            parsed = parse_query(raw, vocabulary(policy))
            query = parsed.canonical()
            if self._authorise is not None:
                self._authorise(policy, parsed.by)
            return self._answer(analyst, policy, ref, parsed)
        except PlacelinkError as refusal:
            entry = QueryEntry(
                analyst, policy_id, ref.version, ref.policy_hash, None, query, "refused",
                refusal.message,
            )  # fmt: skip
            self.store.record_query(entry)
            raise

    def _answer(
        self, analyst: str, policy: Policy, ref: PolicyRef, query: HotspotQuery
    ) -> HotspotAnswer:
        run, index = self.index(policy)
        budget = privacy_budget(policy)
        history = [] if budget else self._history(analyst, policy, run, index, query)
        figures = compute_figures(index, query, policy.disclosure, history, budget)
        with self._lock:
            for key, value in figures.keys.items():
                self._remember((policy.policy_id, run, *key), value)
        answer = figures.publish(ref, query, _disclosure(policy, budget, figures))
        answer.link_run = run
        epsilon = budget.epsilon_per_query if budget else 0.0
        entry = QueryEntry(
            analyst, policy.policy_id, ref.version, ref.policy_hash, run, query.canonical(),
            "answered", "", epsilon, answer.treatment_counts(),
        )  # fmt: skip
        try:
            answer.query_id = self.store.record_query(
                entry, epsilon_total=budget.epsilon_total if budget else None
            )
        except BudgetSpent:
            raise PrivacyBudgetSpent(
                f"the privacy budget for policy {policy.policy_id!r} is spent for this analyst",
                fix="ask the DPO for a new budget period; answers already given stay valid",
            ) from None
        if budget:
            spent = self.store.epsilon_spent(analyst, policy.policy_id)
            answer.budget = _budget_view(budget, spent)
        return answer

    def budget(self, analyst: str, policy_id: str) -> dict[str, float] | None:
        policy = self.policy(policy_id, dt.date.today())
        budget = privacy_budget(policy)
        if budget is None:
            return None
        return _budget_view(budget, self.store.epsilon_spent(analyst, policy_id))

    def _history(
        self,
        analyst: str,
        policy: Policy,
        run: int | None,
        index: HotspotIndex,
        query: HotspotQuery,
    ) -> list[Keyed]:
        """Keyed populations of the analyst's latest answers of this kind."""
        earlier = self.store.recent_queries(analyst, policy.policy_id, run, query.kind, HISTORY)
        words = vocabulary(policy)
        keys: list[Keyed] = []
        for raw in earlier:
            try:
                previous = parse_query(_as_raw(raw), words)
            except PlacelinkError:
                continue  # asked under an earlier vocabulary; cannot be recomputed
            for _, entity_filter in previous.populations():
                cache_key = (policy.policy_id, run, query.kind, _fingerprint(entity_filter))
                with self._lock:
                    cached = self._keys.get(cache_key)
                if cached is None:
                    cached = population_key(index, query.kind, entity_filter)
                    with self._lock:
                        self._remember(cache_key, cached)
                keys.append(cached)
                if len(keys) >= HISTORY:
                    return keys
        return keys

    def _remember(self, key: tuple[Any, ...], value: Keyed) -> None:
        self._keys[key] = value
        self._keys.move_to_end(key)
        while sum(k.key.nbytes for k in self._keys.values()) > _KEY_CACHE_BYTES:
            self._keys.popitem(last=False)


def _fingerprint(entity_filter: Any) -> str:
    return json.dumps(entity_filter.canonical(), sort_keys=True)


def _as_raw(canonical: dict[str, Any]) -> dict[str, Any]:
    """A logged canonical query back into the API's form."""
    raw = {k: canonical[k] for k in ("kind", "by", "filter")}
    if canonical["kind"] == "table":
        raw["measures"] = canonical["measures"]
    return raw


def _budget_view(budget: PrivacyBudget, spent: float) -> dict[str, float]:
    return {
        "epsilon_per_query": budget.epsilon_per_query,
        "epsilon_total": budget.epsilon_total,
        "epsilon_spent": round(spent, 9),
        "epsilon_remaining": round(max(0.0, budget.epsilon_total - spent), 9),
    }


def _disclosure(
    policy: Policy, budget: PrivacyBudget | None, figures: Figures | None
) -> dict[str, Any]:
    control = policy.disclosure
    noise = None
    if budget is not None:
        noise = {"mechanism": MECHANISM, "epsilon": budget.epsilon_per_query}
        if figures is not None:
            noise["sensitivity"] = figures.sensitivity
            noise["scale"] = noise_scale(figures.sensitivity, budget.epsilon_per_query)
    text = RULE.format(
        low=control.min_cell - 1,
        min_cell=control.min_cell,
        rounding=control.rounding,
        noise=f"; discrete Laplace noise (epsilon {budget.epsilon_per_query}) first"
        if budget
        else "",
    )
    return {
        "min_cell": control.min_cell,
        "rounding": control.rounding,
        "secondary_suppression": True,
        "differencing": "noise" if budget else "refuse cells",
        "noise": noise,
        "rule": text,
    }
