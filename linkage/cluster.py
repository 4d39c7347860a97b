"""Clustering linked pairs into entities, and naming entities stably.

Connected components of the links above the threshold chain: A-B and B-C link A with C however
strongly A and C disagree, and across N agencies with duplicates inside agencies such chains
grow into giant clusters. The engine therefore clusters by **average linkage with a threshold**
(:func:`average_linkage_clusters`):

1. Links are taken strongest first (ties in pair order, so runs are repeatable).
2. Two singletons joined by a link above the threshold merge (their only pair is that link).
3. Two larger clusters merge only if the mean match weight over *every* cross pair (compared
   on demand where blocking did not propose the pair) reaches the threshold; otherwise the
   merge is refused and counted. A record that looks like two different people keeps them
   apart instead of fusing them.

Duplicates inside one agency are allowed (a person may be on one agency's books twice): the
same rule decides them. Connected components stay available as the unconstrained reference,
and the cluster-size distribution is reported so that any chaining stays visible.

An entity's id derives from its smallest member key, so it stays the same across runs while
the evidence for that entity is unchanged; when previous entity ids are given (incremental
linking), a cluster keeps the previous id most of its members had.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from linkage.blocking import Pairs

Labels = npt.NDArray[np.int64]
CrossWeights = Callable[[Pairs], npt.NDArray[np.float64]]


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


def _hashed_id(key: str) -> str:
    return "E" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _clusters(labels: Labels, member_keys: list[str]) -> dict[int, list[str]]:
    members: dict[int, list[str]] = {}
    for label, key in zip(labels.tolist(), member_keys, strict=True):
        members.setdefault(label, []).append(key)
    return members


def _inherited_ids(members: dict[int, list[str]], previous: Mapping[str, str]) -> dict[int, str]:
    """Previous ids kept: each goes to the cluster holding most of its members (ties: the
    cluster with the smaller smallest key), and each cluster keeps at most one."""
    claims = []
    for label, keys in members.items():
        for entity, votes in Counter(previous[k] for k in keys if k in previous).items():
            claims.append((-votes, entity, min(keys), label))
    taken: dict[int, str] = {}
    used: set[str] = set()
    for _, entity, _, label in sorted(claims):
        if label not in taken and entity not in used:
            taken[label], used = entity, used | {entity}
    return taken


def entity_ids(
    labels: Labels, member_keys: list[str], previous: Mapping[str, str] | None = None
) -> list[str]:
    """A stable id per row: a previous id the cluster inherits, else a hash of its smallest
    member key (salted further in the rare case that hash is already taken)."""
    members = _clusters(labels, member_keys)
    names = _inherited_ids(members, previous) if previous else {}
    used = set(names.values()) | set(previous.values() if previous else ())
    for label in sorted(members, key=lambda x: min(members[x])):
        if label in names:
            continue
        smallest, salt = min(members[label]), 0
        candidate = _hashed_id(smallest)
        while candidate in used:
            salt += 1
            candidate = _hashed_id(f"{smallest}#{salt}")
        names[label] = candidate
        used.add(candidate)
    return [names[label] for label in labels.tolist()]


class _Partition:
    """Union-find that keeps each cluster's members (small clusters are the common case)."""

    def __init__(self, initial: Labels) -> None:
        self.root = np.arange(len(initial), dtype=np.int64)
        self.members: dict[int, list[int]] = {}
        first: dict[int, int] = {}
        for row, label in enumerate(initial.tolist()):
            head = first.setdefault(label, row)
            self.root[row] = head
            self.members.setdefault(head, []).append(row)

    def find(self, row: int) -> int:
        return int(self.root[row])

    def merge(self, a: int, b: int) -> None:
        keep, gone = (a, b) if len(self.members[a]) >= len(self.members[b]) else (b, a)
        moved = self.members.pop(gone)
        self.root[moved] = keep
        self.members[keep].extend(moved)

    def labels(self) -> Labels:
        smallest = {head: min(rows) for head, rows in self.members.items()}
        return np.array([smallest[r] for r in self.root.tolist()], dtype=np.int64)


def average_linkage_clusters(
    count: int,
    links: Pairs,
    link_weights: npt.NDArray[np.float64],
    threshold: float,
    cross_weights: CrossWeights,
    *,
    initial: Labels | None = None,
) -> tuple[Labels, int]:
    """Labels (the smallest row of each cluster) and the number of refused merges.

    ``links`` are pairs at or above ``threshold``; ``cross_weights`` scores any pairs.
    ``initial`` labels start from existing clusters (incremental linking).
    """
    partition = _Partition(initial if initial is not None else np.arange(count, dtype=np.int64))
    links = links.reshape(-1, 2)
    order = np.lexsort((links[:, 1], links[:, 0], -link_weights))
    refused = 0
    for i, j in links[order].tolist():
        a, b = partition.find(i), partition.find(j)
        if a == b:
            continue
        left, right = partition.members[a], partition.members[b]
        if len(left) > 1 or len(right) > 1:
            cross = np.array([(x, y) for x in left for y in right], dtype=np.int64)
            if float(np.mean(cross_weights(cross))) < threshold:
                refused += 1
                continue
        partition.merge(a, b)
    return partition.labels(), refused


def size_distribution(labels: npt.NDArray[np.int64]) -> dict[int, int]:
    """Cluster size -> number of clusters of that size."""
    sizes = Counter(Counter(labels.tolist()).values())
    return dict(sorted(sizes.items()))
