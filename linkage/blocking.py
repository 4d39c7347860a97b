"""Candidate pairs from encodings only: Hamming LSH over pairs of field-level Bloom filters,
plus exact equality of keyed tokens.

A band samples ``bits_per_field`` positions from each of two field filters; records whose
sampled bits agree fall in one bucket. Bands over *pairs* of fields keep a true match a
candidate when any two of its fields survive a typo, a move or a name change, while two
unrelated people rarely agree on both. The sampling seed is public: it protects nothing and
makes runs repeatable. No bucket is ever capped, so no true match is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from linkage.corpus import EncodedCorpus

Pairs = npt.NDArray[np.int64]  # (p, 2), i < j

DEFAULT_FIELD_PAIRS = (
    ("given_name", "family_name"),
    ("given_name", "date_of_birth"),
    ("family_name", "date_of_birth"),
    ("date_of_birth", "postcode"),
    ("given_name", "postcode"),
    ("family_name", "postcode"),
)


@dataclass(frozen=True)
class BlockingConfig:
    field_pairs: tuple[tuple[str, str], ...] = DEFAULT_FIELD_PAIRS
    bands: int = 6
    bits_per_field: int = 12
    exact_fields: tuple[str, ...] = ("nhs_number",)
    seed: int = 20261122


def _bits(corpus: EncodedCorpus, name: str) -> npt.NDArray[np.bool_]:
    return np.unpackbits(corpus.fields[name].values, axis=1, bitorder="big").astype(bool)


def _pairs_of_equal_keys(keys: npt.NDArray[np.uint64], rows: npt.NDArray[np.int64]) -> Pairs:
    """All pairs of rows whose keys are equal (vectorised over offsets within sorted runs)."""
    if rows.size < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_rows = keys[order], rows[order]
    found, offset = [], 1
    while offset < sorted_keys.size:
        same = sorted_keys[offset:] == sorted_keys[:-offset]
        if not same.any():
            break
        left, right = sorted_rows[:-offset][same], sorted_rows[offset:][same]
        found.append(np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1))
        offset += 1
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def _band_keys(bits: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
    weights = np.left_shift(np.uint64(1), np.arange(bits.shape[1], dtype=np.uint64))
    return np.asarray((bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64))


def _lsh_pairs(corpus: EncodedCorpus, config: BlockingConfig) -> list[Pairs]:
    rng = np.random.default_rng(config.seed)
    cache: dict[str, npt.NDArray[np.bool_]] = {}
    found = []
    for a, b in config.field_pairs:
        if a not in corpus.fields or b not in corpus.fields:
            continue
        bits_a = cache.setdefault(a, _bits(corpus, a))
        bits_b = cache.setdefault(b, _bits(corpus, b))
        rows = np.flatnonzero(corpus.fields[a].present & corpus.fields[b].present).astype(np.int64)
        for _ in range(config.bands):
            pick_a = rng.choice(bits_a.shape[1], config.bits_per_field, replace=False)
            pick_b = rng.choice(bits_b.shape[1], config.bits_per_field, replace=False)
            sample = np.hstack([bits_a[rows][:, pick_a], bits_b[rows][:, pick_b]])
            found.append(_pairs_of_equal_keys(_band_keys(sample), rows))
    return found


def _token_pairs(corpus: EncodedCorpus, name: str) -> Pairs:
    column = corpus.fields[name]
    rows = np.flatnonzero(column.present).astype(np.int64)
    words = column.values[rows].view(np.uint64)
    keys = words[:, 0] ^ (words[:, 1] * np.uint64(0x9E3779B97F4A7C15))
    pairs = _pairs_of_equal_keys(keys, rows)
    equal = np.all(column.values[pairs[:, 0]] == column.values[pairs[:, 1]], axis=1)
    return pairs[equal]


def candidate_pairs(corpus: EncodedCorpus, config: BlockingConfig | None = None) -> Pairs:
    """Unique candidate pairs (i < j) by LSH bands and exact-token equality."""
    config = config or BlockingConfig()
    found = _lsh_pairs(corpus, config)
    found += [_token_pairs(corpus, n) for n in config.exact_fields if n in corpus.fields]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    n = np.int64(max(len(corpus), 1))
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def pair_completeness(pairs: Pairs, true_pairs: set[tuple[int, int]]) -> float:
    """Share of true pairs among the candidates (1.0 when there are none to find)."""
    if not true_pairs:
        return 1.0
    found = {(int(i), int(j)) for i, j in pairs}
    return len(true_pairs & found) / len(true_pairs)


def reduction_ratio(pairs: Pairs, records: int) -> float:
    """1 - candidates / all pairs."""
    total = records * (records - 1) // 2
    return 1.0 - len(pairs) / total if total else 1.0
