"""Dice kernels over packed bit vectors: a compiled one (numba) and a pure-numpy one.

Dice(A, B) = 2 |A & B| / (|A| + |B|); two empty filters have Dice 0. Filters are rows of
64-bit words (:func:`as_words`); popcounts come from the CPU's popcount instruction (LLVM turns
the SWAR expression in :func:`_popcount64` into ``popcnt``/``vpopcntq``) or from
``numpy.bitwise_count``. Both back ends evaluate the same float64 expressions in the same
order, so they return identical results, and the tests hold them to it.

:func:`dice_pairs_above` finds every pair with Dice >= t between two sets of filters and
prunes by popcount bounds, never by guessing:

1. |A & B| <= min(|A|, |B|), so Dice >= t needs t/(2-t) <= |B|/|A| <= (2-t)/t: with B sorted
   by popcount, each row of A scans one window of B.
2. Inside the window, after the first half of the words the common count can grow by at most
   min(|A|_rest, |B|_rest): pairs that cannot reach t(|A|+|B|)/2 any more are dropped there.
   The compiled kernel meets eight rows of B per word of A (B stored word-major in blocks of
   eight), which the compiler turns into vector instructions.

numba is optional at run time: without it the numpy back end runs and gives the same answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from keys.errors import ConfigError

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None  # type: ignore[assignment]

NUMBA_AVAILABLE = numba is not None
Words = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
ROW_CAPACITY = 32  # matches kept per row in the compiled kernel's first pass
LANES = 8  # rows of B met by one word of A in one vector step
_NUMPY_BLOCK_WORDS = 1 << 21  # words in one numpy AND block (16 MiB)

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


def as_words(values: npt.NDArray[np.uint8]) -> Words:
    """Packed filters (n, nbytes) as (n, ceil(nbytes / 8)) 64-bit words, zero-padded."""
    rows, width = values.shape
    padded = -width % 8
    if padded:
        values = np.hstack([values, np.zeros((rows, padded), dtype=np.uint8)])
    return np.ascontiguousarray(values).view(np.uint64).reshape(rows, (width + padded) // 8)


def popcounts(words: Words) -> Ints:
    """Set bits per row."""
    return np.asarray(np.bitwise_count(words).sum(axis=1, dtype=np.int64))


def check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(
            "the Dice threshold is outside (0, 1]",
            fix="give a threshold above 0 and at most 1, for example 0.8",
        )


# --- the compiled back end (plain Python that numba compiles; slow but correct without it) ---


def _popcount64_swar(v: Any) -> Any:
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return (v * _H01) >> np.uint64(56)


_popcount64: Any = _popcount64_swar
_prange: Any = range


def _pair_dice_kernel(words: Any, counts: Any, left: Any, right: Any, out: Any) -> None:
    for p in _prange(left.shape[0]):
        i, j = left[p], right[p]
        common = 0
        for k in range(words.shape[1]):
            common += _popcount64(words[i, k] & words[j, k])
        total = counts[i] + counts[j]
        out[p] = 2.0 * common / total if total > 0 else 0.0


def _block_scan(
    a: Any,
    bt: Any,
    count_a: Any,
    rest_a: Any,
    count_bt: Any,
    rest_bt: Any,
    window: Any,
    threshold: float,
    found: Any,
    half: int,
) -> Any:
    """Matches of every row of A among the blocks of B in its window: (column, common bits).

    B is stored in blocks of LANES rows, word-major (``bt[block, word, lane]``), so that one
    word of A meets LANES rows of B in one vector step. After ``half`` words a block whose
    lanes all fall short of the bound (common so far + the smaller rest) is dropped. Keeps at
    most ``found.shape[1] // 2`` matches per row and returns the true count per row.
    """
    width, capacity = a.shape[1], found.shape[1] // 2
    counts = np.zeros(a.shape[0], dtype=np.int64)
    for i in _prange(a.shape[0]):
        kept = 0
        acc = np.zeros(LANES, dtype=np.int64)
        for block in range(window[i, 0] // LANES, (window[i, 1] + LANES - 1) // LANES):
            acc[:] = 0
            for k in range(half):
                for lane in range(LANES):
                    acc[lane] += _popcount64(a[i, k] & bt[block, k, lane])
            alive = False
            for lane in range(LANES):
                bound = acc[lane] + min(rest_a[i], rest_bt[block, lane])
                alive |= 2.0 * bound >= threshold * (count_a[i] + count_bt[block, lane])
            if not alive:
                continue
            for k in range(half, width):
                for lane in range(LANES):
                    acc[lane] += _popcount64(a[i, k] & bt[block, k, lane])
            for lane in range(LANES):
                total = count_a[i] + count_bt[block, lane]
                if total > 0 and 2.0 * acc[lane] >= threshold * total:
                    if kept < capacity:
                        found[i, 2 * kept] = block * LANES + lane
                        found[i, 2 * kept + 1] = acc[lane]
                    kept += 1
        counts[i] = kept
    return counts


if numba is not None:
    _prange = numba.prange
    _popcount64 = numba.njit(inline="always", cache=True)(_popcount64_swar)
    _compiled_pair_dice = numba.njit(parallel=True, cache=True)(_pair_dice_kernel)
    _compiled_block_scan = numba.njit(parallel=True, cache=True)(_block_scan)


def _use_numba(use_numba: bool | None) -> bool:
    if use_numba and not NUMBA_AVAILABLE:
        raise ConfigError(
            "the compiled Dice kernel was asked for but numba is not installed",
            fix="pip install numba, or leave the back end to choose (use_numba=None)",
        )
    return NUMBA_AVAILABLE if use_numba is None else use_numba


# --- Dice of given pairs (the engine's comparison step) -----------------------------------


def pair_dice(
    words: Words, counts: Ints, left: Ints, right: Ints, *, use_numba: bool | None = None
) -> Floats:
    """Dice of row pairs (left[p], right[p]) of one set of filters."""
    if _use_numba(use_numba) and len(left):
        out = np.empty(len(left), dtype=np.float64)
        _compiled_pair_dice(words, counts, left, right, out)
        return out
    common = np.bitwise_count(words[left] & words[right]).sum(axis=1, dtype=np.int64)
    total = counts[left] + counts[right]
    return np.asarray(np.divide(2.0 * common, total, out=np.zeros(len(total)), where=total > 0))


# --- every pair above a threshold (all-pairs search with popcount-bound pruning) ----------


def _windows(counts_a: Ints, sorted_counts_b: Ints, threshold: float) -> Ints:
    """Per row of A, the slice of B (sorted by popcount) that can reach the threshold.

    Widened by one on each side of the exact bound, so rounding can never drop a match.
    """
    low = np.floor(counts_a * (threshold / (2.0 - threshold))) - 1
    high = np.ceil(counts_a * ((2.0 - threshold) / threshold)) + 1
    start = np.searchsorted(sorted_counts_b, low, side="left")
    stop = np.searchsorted(sorted_counts_b, high, side="right")
    return np.stack([start, stop], axis=1).astype(np.int64)


def _numpy_above(
    a: Words, b: Words, counts_a: Ints, counts_b: Ints, windows: Ints, threshold: float
) -> tuple[Ints, Ints, Ints]:
    """(row of A, column of B, common bits) of every match, with numpy, block by block."""
    rows_per_block = max(1, _NUMPY_BLOCK_WORDS // max(1, b.shape[0] * a.shape[1]))
    found_i, found_j, found_c = [], [], []
    for start in range(0, a.shape[0], rows_per_block):
        rows = np.arange(start, min(start + rows_per_block, a.shape[0]))
        lo, hi = int(windows[rows, 0].min()), int(windows[rows, 1].max())
        if hi <= lo:
            continue
        common = np.bitwise_count(a[rows, None, :] & b[None, lo:hi, :]).sum(-1, dtype=np.int64)
        total = counts_a[rows, None] + counts_b[None, lo:hi]
        hit_i, hit_j = np.nonzero((total > 0) & (2.0 * common >= threshold * total))
        found_i.append(rows[hit_i])
        found_j.append(hit_j + lo)
        found_c.append(common[hit_i, hit_j])
    empty = np.empty(0, dtype=np.int64)
    return (
        np.concatenate(found_i) if found_i else empty,
        np.concatenate(found_j) if found_j else empty,
        np.concatenate(found_c) if found_c else empty,
    )


def _lanes(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Rows (n, ...) as blocks of LANES rows, lane last: (ceil(n / LANES), ..., LANES)."""
    blocks = -(-values.shape[0] // LANES)
    padded = np.zeros((blocks * LANES, *values.shape[1:]), dtype=values.dtype)
    padded[: values.shape[0]] = values
    shaped = padded.reshape(blocks, LANES, *values.shape[1:])
    return np.ascontiguousarray(np.moveaxis(shaped, 1, -1))


def _compiled_above_all(
    a: Words, b: Words, counts_a: Ints, counts_b: Ints, windows: Ints, threshold: float
) -> tuple[Ints, Ints, Ints, Ints]:
    """The compiled scan; returns matches and the rows whose matches overflowed capacity."""
    half = max(1, a.shape[1] // 2)
    rest_a, rest_b = popcounts(a[:, half:]), popcounts(b[:, half:])
    found = np.zeros((a.shape[0], 2 * ROW_CAPACITY), dtype=np.int64)
    kept = _compiled_block_scan(
        a,
        _lanes(b),
        counts_a,
        rest_a,
        _lanes(counts_b),
        _lanes(rest_b),
        windows,
        threshold,
        found,
        half,
    )
    stored = np.minimum(kept, ROW_CAPACITY)
    rows = np.repeat(np.arange(a.shape[0], dtype=np.int64), stored)
    slots = np.arange(len(rows)) - np.repeat(np.cumsum(stored) - stored, stored)
    overflow = np.flatnonzero(kept > ROW_CAPACITY)
    keep = ~np.isin(rows, overflow)
    rows, slots = rows[keep], slots[keep]
    return rows, found[rows, 2 * slots], found[rows, 2 * slots + 1], overflow


def dice_pairs_above(
    a: Words, b: Words, threshold: float, *, use_numba: bool | None = None
) -> tuple[Ints, Ints, Floats]:
    """Every (i, j) with Dice(a[i], b[j]) >= threshold, sorted by (i, j), with its Dice."""
    check_threshold(threshold)
    counts_a, counts_b = popcounts(a), popcounts(b)
    order = np.argsort(counts_b, kind="stable")
    b_sorted = np.ascontiguousarray(b[order])
    windows = _windows(counts_a, counts_b[order], threshold)
    if _use_numba(use_numba) and len(a) and len(b):
        rows, cols, common, overflow = _compiled_above_all(
            a, b_sorted, counts_a, counts_b[order], windows, threshold
        )
        if len(overflow):
            extra = _numpy_above(
                a[overflow],
                b_sorted,
                counts_a[overflow],
                counts_b[order],
                windows[overflow],
                threshold,
            )
            rows = np.concatenate([rows, overflow[extra[0]]])
            cols, common = np.concatenate([cols, extra[1]]), np.concatenate([common, extra[2]])
    else:
        rows, cols, common = _numpy_above(
            a, b_sorted, counts_a, counts_b[order], windows, threshold
        )
    cols = order[cols]
    total = counts_a[rows] + counts_b[cols]
    ranked = np.lexsort((cols, rows))
    return rows[ranked], cols[ranked], (2.0 * common / total)[ranked]
