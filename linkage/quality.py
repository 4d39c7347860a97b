"""Linkage quality against a known truth: pairwise precision, recall and F1.

Pairs are counted from cluster sizes, never enumerated, so large sets cost little.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PairwiseQuality:
    true_positives: int
    predicted_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(counter: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in counter.values())


def pairwise_quality(predicted: Mapping[str, str], truth: Mapping[str, str]) -> PairwiseQuality:
    """Compare record -> entity with record -> true person over the records both know."""
    keys = [k for k in predicted if k in truth]
    both: Counter[object] = Counter((predicted[k], truth[k]) for k in keys)
    return PairwiseQuality(
        true_positives=_pairs(both),
        predicted_pairs=_pairs(Counter(predicted[k] for k in keys)),
        true_pairs=_pairs(Counter(truth[k] for k in keys)),
    )
