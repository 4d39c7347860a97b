"""The linkage engine: blocking, comparison, classification, clustering.

:class:`Engine` fixes the steps (a template method); a backend decides only how the
comparison partitions run. :class:`LocalEngine` runs them in this process; a Dask backend
runs the same partitions on a cluster by overriding :meth:`Engine.map_partitions`.
The offline ``placelink match`` and the linkage service both call :meth:`Engine.link`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from linkage.blocking import BlockingConfig, Pairs, candidate_pairs
from linkage.classify import DEFAULT_THRESHOLD, match_weights
from linkage.cluster import connected_components, entity_ids, size_distribution
from linkage.compare import similarities
from linkage.corpus import EncodedCorpus

PARTITION_PAIRS = 500_000
Scorer = Callable[[EncodedCorpus, Pairs], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class LinkResult:
    """Entities found: one entity id per corpus row, and figures about the run."""

    entity_ids: list[str]
    candidate_pairs: int
    links: int
    cluster_sizes: dict[int, int]

    @property
    def entity_count(self) -> int:
        return len(set(self.entity_ids))

    @property
    def largest_cluster(self) -> int:
        return max(self.cluster_sizes, default=0)


def score_pairs(corpus: EncodedCorpus, pairs: Pairs) -> npt.NDArray[np.float64]:
    """Fellegi-Sunter weight of each pair (one partition's work)."""
    weights, _ = match_weights(similarities(corpus, pairs))
    return weights


class Engine(ABC):
    """Links a corpus into entities; subclasses choose where partitions run."""

    def __init__(
        self, *, threshold: float = DEFAULT_THRESHOLD, blocking: BlockingConfig | None = None
    ) -> None:
        self.threshold = threshold
        self.blocking = blocking or BlockingConfig()

    @abstractmethod
    def map_partitions(
        self, scorer: Scorer, corpus: EncodedCorpus, partitions: Sequence[Pairs]
    ) -> list[npt.NDArray[np.float64]]:
        """Apply ``scorer`` to every partition of candidate pairs, results in order."""

    def link(self, corpus: EncodedCorpus) -> LinkResult:
        pairs = candidate_pairs(corpus, self.blocking)
        partitions = [pairs[i : i + PARTITION_PAIRS] for i in range(0, len(pairs), PARTITION_PAIRS)]
        scores = self.map_partitions(score_pairs, corpus, partitions)
        weights = np.concatenate(scores) if scores else np.empty(0)
        links = pairs[weights >= self.threshold]
        labels = connected_components(len(corpus), links)
        keys = [corpus.member_key(row) for row in range(len(corpus))]
        return LinkResult(
            entity_ids=entity_ids(labels, keys),
            candidate_pairs=len(pairs),
            links=len(links),
            cluster_sizes=size_distribution(labels),
        )


class LocalEngine(Engine):
    """Runs every partition in this process, one after another."""

    def map_partitions(
        self, scorer: Scorer, corpus: EncodedCorpus, partitions: Sequence[Pairs]
    ) -> list[npt.NDArray[np.float64]]:
        return [scorer(corpus, part) for part in partitions]
