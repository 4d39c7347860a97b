"""The Dice kernels: compiled (numba) == pure numpy == brute force, pruning never drops a pair.

Under CI=true a missing numba fails the compiled-kernel tests instead of skipping them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import linkage.kernels
from keys.errors import ConfigError
from linkage.kernels import NUMBA_AVAILABLE, as_words, dice_pairs_above, pair_dice, popcounts
from tests.conftest import require

Uint8s = npt.NDArray[np.uint8]


def brute_force_above(a: Uint8s, b: Uint8s, threshold: float) -> list[tuple[int, int, float]]:
    found = []
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            common = bin(int.from_bytes((x & y).tobytes(), "big")).count("1")
            total = bin(int.from_bytes(x.tobytes(), "big")).count("1")
            total += bin(int.from_bytes(y.tobytes(), "big")).count("1")
            if total and 2.0 * common >= threshold * total:
                found.append((i, j, 2.0 * common / total))
    return found


@st.composite
def filter_sets(draw: st.DrawFn) -> tuple[Uint8s, Uint8s]:
    """Two sets of filters with near-copies, empty rows and widths not a multiple of 8 bytes."""
    nbytes = draw(st.integers(1, 40))
    byte = st.one_of(st.just(0), st.just(255), st.integers(0, 255))
    a = draw(arrays(np.uint8, (draw(st.integers(0, 20)), nbytes), elements=byte))
    b = draw(arrays(np.uint8, (draw(st.integers(0, 20)), nbytes), elements=byte))
    if len(a) and len(b) and draw(st.booleans()):
        b[: min(len(a), len(b))] = a[: min(len(a), len(b))] ^ np.uint8(1 << draw(st.integers(0, 7)))
    return a, b


def thresholds() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([0.5, 0.8, 0.9, 1.0]), st.floats(0.01, 1.0))


@settings(max_examples=150, deadline=None)
@given(filters=filter_sets(), threshold=thresholds())
def test_numpy_kernel_matches_brute_force(filters: tuple[Uint8s, Uint8s], threshold: float) -> None:
    a, b = filters
    rows, cols, dice = dice_pairs_above(as_words(a), as_words(b), threshold, use_numba=False)
    expected = brute_force_above(a, b, threshold)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(i, j) for i, j, _ in expected]
    assert dice.tolist() == [d for _, _, d in expected]


@settings(max_examples=150, deadline=None)
@given(filters=filter_sets(), threshold=thresholds())
def test_compiled_kernel_equals_numpy_kernel(
    filters: tuple[Uint8s, Uint8s], threshold: float
) -> None:
    require(NUMBA_AVAILABLE, "numba")
    a, b = as_words(filters[0]), as_words(filters[1])
    compiled = dice_pairs_above(a, b, threshold, use_numba=True)
    fallback = dice_pairs_above(a, b, threshold, use_numba=False)
    for x, y in zip(compiled, fallback, strict=True):
        assert np.array_equal(x, y)


def test_compiled_kernel_redoes_rows_with_more_matches_than_it_keeps() -> None:
    require(NUMBA_AVAILABLE, "numba")
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (1, 32), dtype=np.uint8)
    many = np.repeat(base, linkage.kernels.ROW_CAPACITY * 3, axis=0)
    a, b = as_words(base), as_words(many)
    rows, cols, dice = dice_pairs_above(a, b, 0.9, use_numba=True)
    assert cols.tolist() == list(range(len(many))) and set(dice.tolist()) == {1.0}
    assert np.array_equal(rows, dice_pairs_above(a, b, 0.9, use_numba=False)[0])


@settings(max_examples=100, deadline=None)
@given(filters=filter_sets())
def test_pair_dice_back_ends_agree_with_brute_force(filters: tuple[Uint8s, Uint8s]) -> None:
    a, _ = filters
    if len(a) < 2:
        return
    words, counts = as_words(a), popcounts(as_words(a))
    left = np.arange(len(a) - 1, dtype=np.int64)
    right = left + 1
    expected = np.array([d for i, j, d in _pair_reference(a, left, right)])
    assert np.array_equal(pair_dice(words, counts, left, right, use_numba=False), expected)
    if NUMBA_AVAILABLE:
        assert np.array_equal(pair_dice(words, counts, left, right, use_numba=True), expected)


def _pair_reference(
    a: Uint8s, left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
) -> list[tuple[int, int, float]]:
    out = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        common = bin(int.from_bytes((a[i] & a[j]).tobytes(), "big")).count("1")
        total = sum(bin(int.from_bytes(a[k].tobytes(), "big")).count("1") for k in (i, j))
        out.append((i, j, 2.0 * common / total if total else 0.0))
    return out


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.01, float("nan")])
def test_threshold_outside_the_unit_interval_is_refused(threshold: float) -> None:
    words = as_words(np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(ConfigError) as caught:
        dice_pairs_above(words, words, threshold)
    assert "threshold" in caught.value.message and caught.value.fix


def test_asking_for_numba_without_it_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linkage.kernels, "NUMBA_AVAILABLE", False)
    words = as_words(np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(ConfigError) as caught:
        dice_pairs_above(words, words, 0.8, use_numba=True)
    assert "numba" in caught.value.fix
    # Left to choose, the engine falls back to numpy and still answers.
    assert len(dice_pairs_above(words, words, 0.8)[0]) == 0
