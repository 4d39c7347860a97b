"""Clustering linked pairs into entities, and naming entities stably.

The walking skeleton takes connected components of links above the threshold (union-find);
the cluster-size distribution is reported so that chaining (giant clusters) is visible.
An entity's id derives from its smallest member key, so it stays the same across runs while
the evidence for that entity is unchanged.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import numpy.typing as npt

from linkage.blocking import Pairs


def connected_components(count: int, links: Pairs) -> npt.NDArray[np.int64]:
    """Component label (the smallest row index in it) of every row."""
    parent = np.arange(count, dtype=np.int64)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:
            parent[x], x = root, int(parent[x])
        return root

    for i, j in links:
        a, b = find(int(i)), find(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([find(x) for x in range(count)], dtype=np.int64)


def entity_ids(labels: npt.NDArray[np.int64], member_keys: list[str]) -> list[str]:
    """A stable id per row: a hash of the smallest member key of its cluster."""
    smallest: dict[int, str] = {}
    for label, key in zip(labels.tolist(), member_keys, strict=True):
        if label not in smallest or key < smallest[label]:
            smallest[label] = key
    names = {
        label: "E" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        for label, key in smallest.items()
    }
    return [names[label] for label in labels.tolist()]


def size_distribution(labels: npt.NDArray[np.int64]) -> dict[int, int]:
    """Cluster size -> number of clusters of that size."""
    sizes = Counter(Counter(labels.tolist()).values())
    return dict(sorted(sizes.items()))
