"""The two loops of salted-copy encoding (:mod:`gateway.salted_positions`), compiled or not.

1. :func:`pair_blocks`: the AES input blocks of every (token, salt) pair of a run of records,
   ``S(record's salt) XOR T(token) XOR counter_j``, pairs in record order, tokens in slot order.
2. :func:`set_bits`: the bit positions read from the AES output of those blocks (big-endian
   words, modulo the filter's bits) set in each record's packed filter.

Between the two, one AES call over the whole run (pyca/cryptography, so AES-NI where the CPU
has it). numba compiles both loops where it is installed (``placelink[fast]``): a record's
blocks and bits then never leave the cache, where numpy would gather each pair's digests into
arrays of a hundred million entries. Without numba the numpy back end makes the same bytes;
the tests hold the two to it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.prf import counter_blocks

NUMBA_AVAILABLE = importlib.util.find_spec("numba") is not None
COMPILED = NUMBA_AVAILABLE  # whether the compiled back end may run (the tests run both)
# Loading the compiled loops costs about 0.6 s of CPU; numpy's loops cost about 2 us more a
# record per copy (8 us for the default schema's four copies; measured at a million records),
# so from about this many records the loading pays.
COMPILED_FROM_RECORDS = 80_000
_LOADING = threading.Lock()
_loops: tuple[Any, Any] | None = None  # the compiled loops, once loaded
_loader: threading.Thread | None = None  # loading them meanwhile (load_in_background)
U8 = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]
Words = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class PairLayout:
    """Which tokens each record hashes: ``ids[value_row[r]]`` (padding index = the number of
    tokens; ``value_row`` -1 where the record has no copy), and where its pairs start in a
    run: record r's pairs are ``offsets[r]`` to ``offsets[r + 1]``."""

    ids: npt.NDArray[np.int32]
    value_row: npt.NDArray[np.int32]
    offsets: Ints
    padding: int
    counters: Words  # be128(j), j < blocks per pair (:func:`counter_words`)
    compiled: bool = False  # run the compiled loops (:func:`use_compiled`)


def _pair_blocks_loop(
    salts: Words,
    tokens: Words,
    counters: Words,
    ids: Any,
    value_row: Any,
    offsets: Ints,
    padding: int,
    start: int,
    stop: int,
    out: Words,
) -> None:
    """``out`` (pairs x blocks, 2): for each pair of records ``start``..``stop``, the blocks
    ``salts[r] ^ tokens[t] ^ counters[j]`` (16-byte rows as two 64-bit words)."""
    blocks = counters.shape[0]
    first = offsets[start]
    for record in range(start, stop):
        row = value_row[record]
        if row < 0:
            continue
        at = (offsets[record] - first) * blocks
        salt0, salt1 = salts[record, 0], salts[record, 1]
        for slot in range(ids.shape[1]):
            token = ids[row, slot]
            if token >= padding:
                continue
            base0, base1 = salt0 ^ tokens[token, 0], salt1 ^ tokens[token, 1]
            for j in range(blocks):
                out[at, 0] = base0 ^ counters[j, 0]
                out[at, 1] = base1 ^ counters[j, 1]
                at += 1


def _set_bits_loop(
    stream: U8,
    offsets: Ints,
    start: int,
    stop: int,
    stride: int,
    hashes: int,
    word: int,
    bits: int,
    out: U8,
    column: int,
    words: Words,
) -> None:
    """For each pair of records ``start``..``stop``: ``hashes`` big-endian words of ``word``
    bytes from its ``stride`` bytes of ``stream``, each modulo ``bits``, set in ``out[r]``
    from byte ``column`` on. ``words``: ``out`` as rows of 64-bit words (a little-endian
    host's), where :func:`_word_view` can make it, else empty.

    Where a position is one byte and ``words`` is given (the default's 256-bit names), each
    position stores a flag byte (a plain store, where setting a bit is a load and a store
    that wait for each other), then each eight flags make one byte of the filter (one
    multiply moves flag i to bit 7 - i of the top byte) and the record's filter is OR-ed in
    64 bits at a time: 1.7x faster than setting the bits one by one (a copy of a million
    records: 0.29 s before, 0.14 s)."""
    first = offsets[start]
    mask = bits - 1 if bits & (bits - 1) == 0 else -1  # a power of two: the modulus is a mask
    if word == 1 and mask >= 0 and words.shape[0] > 0:
        flags = np.zeros(bits, dtype=np.uint8)
        groups = flags.view(np.uint64)
        for record in range(start, stop):
            if offsets[record + 1] == offsets[record]:
                continue
            flags[:] = 0
            for pair in range(offsets[record] - first, offsets[record + 1] - first):
                at = pair * stride
                for i in range(hashes):
                    flags[np.int64(stream[at + i]) & mask] = 1
            for k in range(bits // 64):
                packed = np.uint64(0)
                for b in range(8):
                    top = (groups[8 * k + b] * np.uint64(0x8040201008040201)) >> np.uint64(56)
                    packed |= top << np.uint64(8 * b)
                words[record, column // 8 + k] |= packed
        return
    for record in range(start, stop):
        row = out[record]
        for pair in range(offsets[record] - first, offsets[record + 1] - first):
            at = pair * stride
            for _ in range(hashes):
                value = np.int64(stream[at])
                for _byte in range(1, word):
                    at += 1
                    value = (value << 8) | np.int64(stream[at])
                at += 1
                position = value & mask if mask >= 0 else value % bits
                row[column + (position >> 3)] |= np.uint8(0x80 >> (position & 7))


def _word_view(out: U8, column: int, bits: int) -> Words:
    """``out`` (rows of packed filters) as rows of 64-bit words, for the compiled loop's
    flagged path, where that reads the same bits: a little-endian host, rows and ``column``
    on 8-byte bounds, ``bits`` a multiple of 64; else an empty array (bit by bit instead)."""
    aligned = out.flags.c_contiguous and out.shape[1] % 8 == 0 and column % 8 == 0
    if sys.byteorder != "little" or not aligned or bits % 64 or not out.size:
        return np.zeros((0, 1), dtype=np.uint64)
    return out.view(np.uint64)


def compiled_loops() -> tuple[Any, Any]:
    """The two loops compiled by numba (loaded from numba's cache after the first run), made
    on first use: importing numba and loading its code takes about half a second, so a
    single process starts it while it reads its input (:func:`load_in_background`), and of
    two processes the child does it while the parent draws pseudonyms (:mod:`gateway.parallel`)."""
    global _loops
    with _LOADING:
        if _loops is None:
            import numba

            loops = (
                numba.njit(cache=True, nogil=True)(_pair_blocks_loop),
                numba.njit(cache=True, nogil=True)(_set_bits_loop),
            )
            _warm(*loops)
            _loops = loops
        return _loops


def compiled_loops_alone() -> tuple[Any, Any]:
    """:func:`compiled_loops`, loaded in a process that runs no other compiled code (the
    second process of :mod:`gateway.parallel`), where numba is not imported yet: without
    scipy.linalg, which numba imports only to learn whether it can compile ``np.dot`` and
    ``np.linalg`` (neither is in these loops; numba handles its absence by design). That import
    was 0.15-0.35 s of the 0.6-0.9 s load on the bench machine. Elsewhere, as loaded."""
    if "numba" in sys.modules or "scipy.linalg" in sys.modules:
        return compiled_loops()
    finder = _WithoutLinalg()
    sys.meta_path.insert(0, finder)
    try:
        return compiled_loops()
    finally:
        sys.meta_path.remove(finder)


class _WithoutLinalg(importlib.abc.MetaPathFinder):
    """Refuses scipy.linalg (its modules as well) while it is on ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "scipy.linalg" or name.startswith("scipy.linalg."):
            raise ImportError(f"{name} is not imported while numba loads the copy loops")
        return None


def _warm(pair_blocks_loop: Any, set_bits_loop: Any) -> None:
    """Call each loop once on one record, which loads (or compiles) its machine code."""
    layout = PairLayout(np.zeros((1, 1), np.int32), np.zeros(1, np.int32),
                        np.array([0, 1]), 1, counter_words(1))  # fmt: skip
    blocks = np.zeros((1, 2), dtype=np.uint64)
    pair_blocks_loop(blocks, blocks, layout.counters, layout.ids, layout.value_row,
                     layout.offsets, layout.padding, 0, 1, blocks)  # fmt: skip
    filters = np.zeros((1, 32), dtype=np.uint8)
    stream = blocks.view(np.uint8).reshape(-1)
    for words in (_word_view(filters, 0, 256), np.zeros((0, 1), dtype=np.uint64)):
        set_bits_loop(stream, layout.offsets, 0, 1, 16, 1, 1, 256, filters, 0, words)


def use_compiled(records: int) -> bool:
    """Whether a batch of ``records`` runs the compiled loops: where numba is installed, for
    a batch large enough to pay for loading them, or once they are loaded."""
    return COMPILED and (_loops is not None or records >= COMPILED_FROM_RECORDS)


def load_in_background() -> None:
    """Start loading the compiled loops in a thread (where numba is installed), to overlap
    it with reading the input; the first :func:`compiled_loops` waits for it. Not in a process
    that will fork: the child would inherit a half-made import without its thread."""
    global _loader
    if COMPILED and _loops is None and _loader is None:
        _loader = threading.Thread(target=compiled_loops, name="numba-load", daemon=True)
        _loader.start()


def counter_words(blocks: int) -> Words:
    """:func:`gateway.prf.counter_blocks` as rows of two 64-bit words (the host's order)."""
    return counter_blocks(blocks).view(np.uint64)


def pair_blocks(
    salts: U8, tokens: U8, layout: PairLayout, start: int, stop: int, out: Words
) -> int:
    """Write into ``out`` (rows of two 64-bit words, one per block) the AES input of records
    ``start``..``stop``: ``blocks`` (the rows of ``counters``) blocks per pair. Returns the
    number of blocks written."""
    blocks = int(layout.counters.shape[0])
    pairs = int(layout.offsets[stop] - layout.offsets[start])
    salt_words, token_words = salts.view(np.uint64), tokens.view(np.uint64)
    if layout.compiled:
        compiled_loops()[0](
            salt_words, token_words, layout.counters, layout.ids, layout.value_row,
            layout.offsets, layout.padding, start, stop, out,
        )  # fmt: skip
    else:
        rows, token = _pairs(layout, start, stop)
        plain = (salt_words[rows] ^ token_words[token])[:, None, :] ^ layout.counters[None]
        out[: pairs * blocks] = plain.reshape(-1, 2)
    return pairs * blocks


def _pairs(layout: PairLayout, start: int, stop: int) -> tuple[Ints, Ints]:
    """The record and the token of each pair of records ``start``..``stop``, in pair order."""
    value_row = layout.value_row[start:stop]
    held = np.flatnonzero(value_row >= 0)
    ids = layout.ids[value_row[held]]
    which, slot = np.nonzero(ids < layout.padding)
    return held[which] + start, ids[which, slot].astype(np.int64)


def set_bits(
    stream: U8,
    layout: PairLayout,
    start: int,
    stop: int,
    *,
    stride: int,
    hashes: int,
    word: int,
    bits: int,
    out: U8,
    column: int = 0,
) -> None:
    """Set in ``out`` (packed filters, one row per record, from byte ``column`` on) the
    positions that ``stream`` (the AES output of :func:`pair_blocks`: ``stride`` bytes per
    pair) gives each pair of records ``start``..``stop``."""
    if layout.compiled:
        loop, words = compiled_loops()[1], _word_view(out, column, bits)
        loop(stream, layout.offsets, start, stop, stride, hashes, word, bits, out, column, words)
        return
    rows, _ = _pairs(layout, start, stop)
    dtype = np.dtype({1: "u1", 2: ">u2", 4: ">u4"}[word])
    words = stream[: len(rows) * stride].view(dtype).reshape(len(rows), stride // word)
    positions = words[:, :hashes].astype(np.int64) % bits
    flags = np.zeros((stop - start, bits), dtype=np.bool_)
    flags[(rows - start)[:, None], positions] = True
    out[start:stop, column : column + bits // 8] |= np.packbits(flags, axis=1, bitorder="big")
