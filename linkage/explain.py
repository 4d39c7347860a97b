"""Why two records linked, or did not: the evidence of each field, weighed.

For a pair of records the explanation lists, per field, the similarity of their encodings
(Dice, or token equality), the agreement level it falls in, that level's m and u and the
weight log2(m/u) it adds; then the total (a dependent group counted once), the posterior match
probability, the threshold, whether blocking proposed the pair at all, and whether the two
ended in one entity (clustering can keep apart a pair above the threshold, or join a pair
below it through the rest of its entity).

It shows similarities and model parameters of the two records named, never encodings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keys.errors import InputError
from linkage.blocking import BlockingConfig, proposes
from linkage.classify import DEFAULT_MODELS
from linkage.compare import MISSING, PairComparer, similarities
from linkage.corpus import EncodedCorpus
from linkage.engine import LinkResult, model_fields
from linkage.fellegi_sunter import swap_masked


@dataclass(frozen=True)
class FieldEvidence:
    field: str
    similarity: float | None  # None: missing on either side
    level: str
    m: float | None
    u: float | None
    weight: float


@dataclass(frozen=True)
class PairExplanation:
    left: str
    right: str
    fields: tuple[FieldEvidence, ...]
    total: float
    probability: float
    threshold: float
    proposed_by_blocking: bool
    same_entity: bool

    @property
    def above_threshold(self) -> bool:
        return self.total >= self.threshold


def _level_label(thresholds: tuple[float, ...], level: int) -> str:
    if level == MISSING:
        return "missing"
    return f">= {thresholds[level]:g}" if level < len(thresholds) else "below all levels"


def explain_pair(
    corpus: EncodedCorpus, result: LinkResult, rows: tuple[int, int], blocking: BlockingConfig
) -> PairExplanation:
    """The evidence for one pair of corpus rows under the model of ``result``."""
    if result.model is None:
        raise InputError(
            "the link result carries no Fellegi-Sunter model to explain the pair with",
            fix="explain a result returned by Engine.link",
        )
    model, (i, j) = result.model, rows
    pair = np.array([[i, j]], dtype=np.int64)
    fields = model_fields(corpus)
    levels = PairComparer(corpus, fields, DEFAULT_MODELS).levels(pair)
    similarity = similarities(corpus, pair)
    parts = model.contributions(swap_masked(model, levels))[0]  # possible swaps: names 0
    evidence = []
    for index, name in enumerate(fields):
        level, spec = int(levels[0, index]), model.models[index]
        value = float(similarity[name][0])
        evidence.append(
            FieldEvidence(
                field=name,
                similarity=None if math.isnan(value) else value,
                level=_level_label(spec.thresholds, level),
                m=None if level == MISSING else spec.m[level],
                u=None if level == MISSING else spec.u[level],
                weight=float(parts[index]),
            )
        )
    total = float(model.weights(levels)[0])
    return PairExplanation(
        left=corpus.member_key(i),
        right=corpus.member_key(j),
        fields=tuple(evidence),
        total=total,
        probability=float(model.probability(np.array([total]))[0]),
        threshold=result.threshold,
        proposed_by_blocking=proposes(corpus, blocking, i, j),
        same_entity=result.entity_ids[i] == result.entity_ids[j],
    )


def format_explanation(explanation: PairExplanation, names: tuple[str, str]) -> str:
    """A table a person can read: one line per field, then the verdict."""
    lines = [
        f"{names[0]}  vs  {names[1]}",
        f"  {'field':<14} {'similarity':>10}  {'level':<17} {'m':>7} {'u':>9} {'weight':>7}",
    ]
    for e in explanation.fields:
        sim = "-" if e.similarity is None else f"{e.similarity:.3f}"
        m = "-" if e.m is None else f"{e.m:.4f}"
        u = "-" if e.u is None else f"{e.u:.6f}"
        lines.append(f"  {e.field:<14} {sim:>10}  {e.level:<17} {m:>7} {u:>9} {e.weight:>+7.2f}")
    verdict = "above" if explanation.above_threshold else "below"
    lines += [
        f"  total weight {explanation.total:+.2f} (address with postcode, and the two names, "
        f"count by their joint m/u; both names at their worst where date of birth and postcode "
        f"agree count 0, a possible swap), {verdict} the threshold {explanation.threshold:.2f}; "
        f"match probability {explanation.probability:.4f}",
        f"  proposed by blocking: {'yes' if explanation.proposed_by_blocking else 'no'}; "
        f"same entity: {'yes' if explanation.same_entity else 'no'}",
    ]
    return "\n".join(lines)
