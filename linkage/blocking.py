"""Candidate pairs from encodings only: Hamming LSH over pairs of field-level Bloom filters,
plus exact equality of keyed tokens.

A band samples ``bits_per_field`` positions from each of two field filters; records whose
sampled bits agree fall in one bucket. Bands over *pairs* of fields keep a true match a
candidate when any two of its fields survive a typo, a move or a name change, while two
unrelated people rarely agree on both. The sampling seed is public: it protects nothing and
makes runs repeatable. No bucket is ever capped, so no true match is silently dropped.

The number of sampled bits grows with the corpus (:func:`bits_for`): unrelated pairs collide
in a band with probability about p^(2k) for k bits per field, while there are n^2/2 pairs, so
k grows by about 0.7 bits per doubling of n to keep the candidates near-linear in n. Bits are
read straight from the packed filters, never unpacked, so memory stays at a few arrays of n.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from linkage.corpus import EncodedCorpus

Pairs = npt.NDArray[np.int64]  # (p, 2), i < j
Keys = npt.NDArray[np.uint64]

BLOCKING_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "address")
DEFAULT_FIELD_PAIRS = tuple(itertools.combinations(BLOCKING_FIELDS, 2))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class BlockingConfig:
    field_pairs: tuple[tuple[str, str], ...] = DEFAULT_FIELD_PAIRS
    bands: int = 16
    bits_per_field: int | None = None  # None: grows with the corpus (see bits_for)
    exact_fields: tuple[str, ...] = ("nhs_number",)
    seed: int = 20261122


def bits_for(config: BlockingConfig, records: int) -> int:
    """Sampled bits per field and band: given, or 10 up to 10,000 records, +0.7 per doubling."""
    if config.bits_per_field is not None:
        return config.bits_per_field
    return max(10, round(10 + 0.7 * math.log2(max(records, 1) / 10_000)))


def _sampled_key(values: npt.NDArray[np.uint8], picks: npt.NDArray[np.int64]) -> Keys:
    """The sampled bits of every row as one integer (hashed together past 64 bits)."""
    key = np.zeros(values.shape[0], dtype=np.uint64)
    for index, bit in enumerate(picks.tolist()):
        column = (values[:, bit >> 3] >> np.uint8(7 - (bit & 7))) & np.uint8(1)
        if index and index % 64 == 0:
            key = key * _MIX
        key ^= column.astype(np.uint64) << np.uint64(index % 64)
    return key


def informative_bits(
    values: npt.NDArray[np.uint8], present: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Bit positions set in between 10% and 90% of the present rows.

    A bit that (nearly) every filter sets, say from the bigrams of 'road', agrees between any
    two records and only makes buckets bigger; sampling the bits that vary keeps bands
    selective. All positions when too few qualify. Computed in chunks, never all unpacked.
    """
    rows = np.flatnonzero(present)
    counts = np.zeros(values.shape[1] * 8, dtype=np.int64)
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = values[rows[start : start + _CHUNK_ROWS]]
        counts += np.unpackbits(chunk, axis=1).sum(axis=0, dtype=np.int64)
    share = counts / max(len(rows), 1)
    chosen = np.flatnonzero((share >= 0.1) & (share <= 0.9)).astype(np.int64)
    return chosen if len(chosen) >= 16 else np.arange(len(counts), dtype=np.int64)


def _pairs_of_equal_keys(keys: Keys, rows: npt.NDArray[np.int64]) -> Pairs:
    """All pairs of rows whose keys are equal, vectorised over the runs of the sorted keys."""
    if rows.size < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_rows = keys[order], rows[order]
    starts = np.concatenate([[0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1])
    ends = np.concatenate([starts[1:], [len(sorted_keys)]])
    run_end = np.repeat(ends, ends - starts)  # per position: where its run ends
    partners = run_end - np.arange(len(sorted_keys)) - 1  # later positions in the same run
    left_pos = np.repeat(np.arange(len(sorted_keys)), partners)
    offsets = np.arange(len(left_pos)) - np.repeat(np.cumsum(partners) - partners, partners)
    left, right = sorted_rows[left_pos], sorted_rows[left_pos + 1 + offsets]
    return np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1)


@dataclass(frozen=True)
class Band:
    fields: tuple[str, str]
    picks: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def _copies(corpus: EncodedCorpus, name: str) -> list[tuple[str, str | None]]:
    """A field's columns as blocking sees them, each with its salt's field (None: unsalted)."""
    salts = corpus.salt_fields.get(name)
    if salts is None:
        return [(name, None)]
    return [(corpus.copy_name(name, k), salt) for k, salt in enumerate(salts)]


def field_pairs(corpus: EncodedCorpus, config: BlockingConfig) -> list[tuple[str, str]]:
    """The configured pairs of fields over the corpus's columns: a field with copies (one per
    salt) is banded copy by copy, and two fields with copies pair only copies of one salt."""
    out: list[tuple[str, str]] = []
    for a, b in config.field_pairs:
        if a not in corpus.fields or b not in corpus.fields:
            continue
        for (name_a, salt_a), (name_b, salt_b) in itertools.product(
            _copies(corpus, a), _copies(corpus, b)
        ):
            if salt_a is None or salt_b is None or salt_a == salt_b:
                out.append((name_a, name_b))
    return out


def bands(corpus: EncodedCorpus, config: BlockingConfig) -> Iterator[Band]:
    """The LSH bands of a corpus, in a fixed order from the public seed."""
    rng = np.random.default_rng(config.seed)
    bits = bits_for(config, len(corpus))
    usable: dict[str, npt.NDArray[np.int64]] = {}
    columns = corpus.copy_columns
    for a, b in field_pairs(corpus, config):
        for name in (a, b):
            if name not in usable:
                usable[name] = informative_bits(columns[name].values, columns[name].present)
        for _ in range(config.bands):
            pick_a = rng.choice(usable[a], min(bits, len(usable[a])), replace=False)
            pick_b = rng.choice(usable[b], min(bits, len(usable[b])), replace=False)
            yield Band((a, b), (pick_a.astype(np.int64), pick_b.astype(np.int64)))


def band_keys(corpus: EncodedCorpus, band: Band, rows: npt.NDArray[np.int64]) -> Keys:
    (a, b), (pick_a, pick_b) = band.fields, band.picks
    key_a = _sampled_key(corpus.copy_columns[a].values[rows], pick_a)
    key_b = _sampled_key(corpus.copy_columns[b].values[rows], pick_b)
    return np.asarray(key_a * _MIX ^ key_b, dtype=np.uint64)


def _lsh_pairs(corpus: EncodedCorpus, config: BlockingConfig) -> list[Pairs]:
    found = []
    for band in bands(corpus, config):
        a, b = band.fields
        present = corpus.copy_columns[a].present & corpus.copy_columns[b].present
        rows = np.flatnonzero(present).astype(np.int64)
        found.append(_pairs_of_equal_keys(band_keys(corpus, band, rows), rows))
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
    n = np.int64(max(len(corpus), 1))
    codes = np.concatenate([p[:, 0] * n + p[:, 1] for p in found])
    del found
    codes.sort()  # sort-based unique: much faster than np.unique's hashing on large arrays
    codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if len(codes) else codes
    return np.stack([codes // n, codes % n], axis=1)


def proposes(corpus: EncodedCorpus, config: BlockingConfig, i: int, j: int) -> bool:
    """Whether blocking makes (i, j) a candidate (for explaining a pair, without a full run)."""
    rows = np.array([i, j], dtype=np.int64)
    for band in bands(corpus, config):
        a, b = band.fields
        if not all(corpus.copy_columns[n].present[rows].all() for n in (a, b)):
            continue
        keys = band_keys(corpus, band, rows)
        if keys[0] == keys[1]:
            return True
    for name in config.exact_fields:
        column = corpus.fields.get(name)
        present = column is not None and bool(column.present[rows].all())
        if present and column is not None and np.array_equal(column.values[i], column.values[j]):
            return True
    return False


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
