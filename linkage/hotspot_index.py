"""A columnar, in-memory index of one link run for fast hot-spot queries (numpy).

Built once per link run from the store (one row per record: entity, agency, area, month,
flags) and then answering every query with vectorised passes over per-entity arrays: 1M linked
entities answer in milliseconds. Without a time window each entity's agencies (a bit mask),
flags (a bit mask) and area (of its most recent record: latest month, ties to the greater area
code, records without a month the oldest) are precomputed; with a window they are recomputed
from the records in it with ``reduceat`` over records sorted by entity and month.

Counts here are true counts. Nothing leaves the service without :mod:`linkage.disclosure`.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from linkage.hotspot_query import EntityFilter

IntArray = NDArray[Any]  # integer arrays of the narrowest type that fits
BoolArray = NDArray[np.bool_]
MAX_AGENCIES = 30
WINDOW_CACHE = 16


@dataclass(frozen=True)
class Profiles:
    """Per-entity agencies and flags (bit masks), how many agencies, and area (-1: not
    placed), under one time window."""

    agencies: IntArray
    flags: IntArray
    area: IntArray
    known: IntArray


@dataclass(frozen=True)
class Population:
    """The entities a filter selects, and the area each counts in."""

    selected: BoolArray
    profiles: Profiles

    def area_key(self) -> IntArray:
        """Area of each selected entity, -1 for the others."""
        area = self.profiles.area
        return np.where(self.selected, area, np.array(-1, dtype=area.dtype))


class HotspotIndex:
    """Entities of one link run as arrays; see the module docstring."""

    def __init__(
        self,
        *,
        agencies: Sequence[str],
        flags: Sequence[str],
        areas: Sequence[str],
        months: Sequence[str],
        entity: IntArray,
        agency: IntArray,
        area: IntArray,
        month: IntArray,
        flag_bits: IntArray,
    ) -> None:
        if len(agencies) > MAX_AGENCIES or len(flags) > MAX_AGENCIES:
            raise ValueError(f"at most {MAX_AGENCIES} agencies and flags")
        self.agencies, self.flags = tuple(agencies), tuple(flags)
        self.areas, self.months = tuple(areas), tuple(months)
        self.entity_count = int(entity.max()) + 1 if len(entity) else 0
        self._area_type = np.int16 if len(self.areas) < 2**15 else np.int32
        order = np.lexsort((area, month, entity))
        entity, month, area = entity[order], month[order], area[order]
        bits, flag_bits = np.left_shift(1, agency[order]), flag_bits[order]
        self._all = self._profiles(entity, bits, flag_bits, area)
        self._build_months(entity, month, area, bits, flag_bits)
        self._windows: OrderedDict[tuple[int, int], Profiles] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[tuple[str, str, str | None, str | None, int]],
        *,
        agencies: Sequence[str],
        flags: Sequence[str],
    ) -> HotspotIndex:
        """From (entity id, agency, area or None, month or None, flag bits) rows; rows of an
        agency the policy does not name are ignored."""
        known = {name: i for i, name in enumerate(agencies)}
        kept = [r for r in rows if r[1] in known]
        areas = sorted({r[2] for r in kept if r[2] is not None})
        months = sorted({r[3] for r in kept if r[3] is not None})
        area_at, month_at = (
            {a: i for i, a in enumerate(areas)},
            {m: i for i, m in enumerate(months)},
        )
        entity_at: dict[str, int] = {}
        columns = np.array(
            [
                (
                    entity_at.setdefault(e, len(entity_at)),
                    known[s],
                    -1 if a is None else area_at[a],
                    -1 if m is None else month_at[m],
                    bits,
                )
                for e, s, a, m, bits in kept
            ],
            dtype=np.int64,
        ).reshape(-1, 5)
        return cls(
            agencies=agencies, flags=flags, areas=areas, months=months,
            entity=columns[:, 0], agency=columns[:, 1], area=columns[:, 2],
            month=columns[:, 3], flag_bits=columns[:, 4],
        )  # fmt: skip

    def _profiles(
        self, entity: IntArray, bits: IntArray, flag_bits: IntArray, area: IntArray
    ) -> Profiles:
        """Agencies, flags and latest area per entity over all records (sorted by entity,
        month, area; so an entity's last placed record is its latest)."""
        if not len(entity):
            empty = np.zeros(0, dtype=np.int64)
            return Profiles(empty, empty, empty, empty)
        starts = _group_starts(entity)
        position = np.where(area >= 0, np.arange(len(entity)), -1)
        last = np.maximum.reduceat(position, starts)
        placed = np.where(last >= 0, area[np.maximum(last, 0)], -1).astype(self._area_type)
        agencies = np.bitwise_or.reduceat(bits, starts).astype(_mask_type(len(self.agencies)))
        flags = np.bitwise_or.reduceat(flag_bits, starts).astype(_mask_type(len(self.flags)))
        return Profiles(agencies, flags, placed, np.bitwise_count(agencies))

    def _build_months(
        self, entity: IntArray, month: IntArray, area: IntArray, bits: IntArray, flags: IntArray
    ) -> None:
        """Per month and entity (dense, months x entities): agencies and flags of that
        month's contacts and the area of its latest placed one; and the (month, entity)
        contacts in month order, for trends."""
        dated = month >= 0
        key = month[dated] * max(1, self.entity_count) + entity[dated]
        order = np.argsort(key, kind="stable")  # keeps the area order inside a month
        key, area = key[order], area[dated][order]
        bits, flags = bits[dated][order], flags[dated][order]
        starts = _group_starts(key)
        pairs = key[starts] if len(key) else key
        self._pair_month = (pairs // max(1, self.entity_count)).astype(np.int32)
        self._pair_entity = (pairs % max(1, self.entity_count)).astype(np.int32)
        self._pair_bounds = np.searchsorted(self._pair_month, np.arange(len(self.months) + 1))
        shape = (len(self.months), self.entity_count)
        self._month_agencies = np.zeros(shape, dtype=_mask_type(len(self.agencies)))
        self._month_flags = np.zeros(shape, dtype=_mask_type(len(self.flags)))
        self._month_area = np.full(shape, -1, dtype=self._area_type)
        if len(pairs):
            at = (self._pair_month, self._pair_entity)
            self._month_agencies[at] = np.bitwise_or.reduceat(bits, starts)
            self._month_flags[at] = np.bitwise_or.reduceat(flags, starts)
            self._month_area[at] = np.maximum.reduceat(area, starts)

    def _window_profiles(self, low: int, high: int) -> Profiles:
        """The same from the contacts of months low..high only."""
        if low > high:
            agencies = np.zeros(self.entity_count, dtype=self._month_agencies.dtype)
            flags = np.zeros(self.entity_count, dtype=self._month_flags.dtype)
        else:
            agencies = np.bitwise_or.reduce(self._month_agencies[low : high + 1], axis=0)
            flags = np.bitwise_or.reduce(self._month_flags[low : high + 1], axis=0)
        area = np.full(self.entity_count, -1, dtype=self._area_type)
        for month in range(low, high + 1):  # later months overwrite: the latest area wins
            row = self._month_area[month]
            np.copyto(area, row, where=row >= 0)
        return Profiles(agencies, flags, area, np.bitwise_count(agencies))

    def month_range(self, since: str | None, until: str | None) -> tuple[int, int]:
        """Indices of the first and last month of the index inside the window."""
        low = 0 if since is None else bisect.bisect_left(self.months, since)
        high = (
            len(self.months) - 1 if until is None else bisect.bisect_right(self.months, until) - 1
        )
        return low, high

    def profiles_for(self, since: str | None, until: str | None) -> Profiles:
        """Profiles under a window (the latest few windows asked are kept)."""
        if since is None and until is None:
            return self._all
        window = self.month_range(since, until)
        with self._lock:
            cached = self._windows.get(window)
        if cached is None:
            cached = self._window_profiles(*window)
            with self._lock:
                self._windows[window] = cached
                while len(self._windows) > WINDOW_CACHE:
                    self._windows.popitem(last=False)
        return cached

    def _mask(self, names: Sequence[str], vocabulary: Sequence[str]) -> int:
        return sum(1 << vocabulary.index(n) for n in names)

    def select(self, entity_filter: EntityFilter) -> Population:
        """The population a filter selects."""
        profiles = self.profiles_for(entity_filter.since, entity_filter.until)
        agencies = profiles.agencies
        needed = self._mask(entity_filter.all_of, self.agencies)
        excluded = self._mask(entity_filter.none_of, self.agencies)
        flags = self._mask(entity_filter.flags, self.flags)
        selected = (profiles.area >= 0) & (profiles.known >= entity_filter.min_agencies)
        if needed:
            selected &= (agencies & needed) == needed
        if excluded:
            selected &= (agencies & excluded) == 0
        if flags:
            selected &= (profiles.flags & flags) == flags
        return Population(selected, profiles)

    def area_counts(self, population: Population) -> IntArray:
        """Entities per area (index order of ``areas``)."""
        key = population.profiles.area[population.selected]
        return np.bincount(key, minlength=len(self.areas)).astype(np.int64)

    def contact_span(self, since: str | None, until: str | None) -> slice:
        """The (month, entity) contacts of a window: a slice of the month order."""
        low, high = self.month_range(since, until)
        start = int(self._pair_bounds[min(low, len(self.months))])
        return slice(start, int(self._pair_bounds[max(low, high + 1)]))

    def trend_key(self, population: Population, since: str | None, until: str | None) -> IntArray:
        """Per (month, entity) contact: the cell area * months + month, or -1 if not counted."""
        span = self.contact_span(since, until)
        start, stop = span.start, span.stop
        months = len(self.months)
        # area * months per selected entity, and far below zero for the others, so that one
        # gather, one add and one clamp give every contact's cell or -1
        base = np.where(
            population.selected, population.profiles.area.astype(np.int32) * months, -(2**30)
        )
        key = np.full(len(self._pair_month), -1, dtype=np.int32)
        window = key[start:stop]
        np.add(base[self._pair_entity[start:stop]], self._pair_month[start:stop], out=window)
        np.maximum(window, -1, out=window)
        if len(self.areas) * months < 2**15:  # kept for differencing: store it narrow
            return key.astype(np.int16)
        return key

    def trend_counts(self, key: IntArray) -> IntArray:
        """Entities per area and month, shape (areas, months)."""
        cells = len(self.areas) * len(self.months)
        counts = np.bincount(key[key >= 0], minlength=cells).astype(np.int64)
        return counts.reshape(len(self.areas), len(self.months))

    def cooccurrence(self, population: Population) -> IntArray:
        """Entities known to both agencies of each pair (diagonal: known to that agency)."""
        return pair_counts(population.profiles.agencies[population.selected], len(self.agencies))


def agency_bits(masks: IntArray, agencies: int) -> IntArray:
    """One 0/1 column per agency from agency bit masks."""
    return ((masks[:, None] >> np.arange(agencies)) & 1).astype(np.int64)


def pair_counts(masks: IntArray, agencies: int) -> IntArray:
    """For agency bit masks, how many have both bits of each pair (a square matrix)."""
    if agencies <= 16:  # histogram of the 2**agencies masks, then a tiny product
        histogram = np.bincount(masks.astype(np.intp), minlength=1 << agencies)
        bits = agency_bits(np.arange(1 << agencies), agencies)
        return np.asarray(bits.T @ (histogram[:, None] * bits), dtype=np.int64)
    wide = agency_bits(masks, agencies).astype(np.float64)
    return np.rint(wide.T @ wide).astype(np.int64)


def _mask_type(bits: int) -> type[np.unsignedinteger[Any]]:
    return np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32


def _group_starts(sorted_keys: IntArray) -> IntArray:
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)
