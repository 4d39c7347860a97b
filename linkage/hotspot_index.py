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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from linkage.hotspot_query import EntityFilter

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
MAX_AGENCIES = 30


@dataclass(frozen=True)
class Profiles:
    """Per-entity agencies, flags and area (-1: not placed) under one time window."""

    agencies: IntArray
    flags: IntArray
    area: IntArray


@dataclass(frozen=True)
class Population:
    """The entities a filter selects, and the area each counts in."""

    selected: BoolArray
    profiles: Profiles

    def area_key(self) -> IntArray:
        """Area of each selected entity, -1 for the others."""
        return np.where(self.selected, self.profiles.area, -1)


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
        if len(agencies) > MAX_AGENCIES:
            raise ValueError(f"at most {MAX_AGENCIES} agencies")
        self.agencies, self.flags = tuple(agencies), tuple(flags)
        self.areas, self.months = tuple(areas), tuple(months)
        order = np.lexsort((area, month, entity))
        self._entity, self._agency = entity[order], agency[order]
        self._area, self._month, self._flag_bits = area[order], month[order], flag_bits[order]
        self.entity_count = int(entity.max()) + 1 if len(entity) else 0
        self._starts = _group_starts(self._entity)
        self._all = self._profiles(np.ones(len(self._entity), dtype=np.bool_))
        pairs = np.unique(
            self._entity[self._month >= 0] * len(self.months) + self._month[self._month >= 0]
        )
        self._pair_entity = pairs // max(1, len(self.months))
        self._pair_month = pairs % max(1, len(self.months))

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

    def _profiles(self, keep: BoolArray) -> Profiles:
        """Agencies, flags and latest area per entity, from the records where ``keep``."""
        if not len(self._entity):
            empty = np.zeros(0, dtype=np.int64)
            return Profiles(empty, empty, empty)
        bits = np.where(keep, np.left_shift(1, self._agency), 0)
        flags = np.where(keep, self._flag_bits, 0)
        placed = keep & (self._area >= 0)
        position = np.where(placed, np.arange(len(self._entity)), -1)
        last = np.maximum.reduceat(position, self._starts)
        area = np.where(last >= 0, self._area[np.maximum(last, 0)], -1)
        return Profiles(
            np.bitwise_or.reduceat(bits, self._starts),
            np.bitwise_or.reduceat(flags, self._starts),
            area,
        )

    def month_range(self, since: str | None, until: str | None) -> tuple[int, int]:
        """Indices of the first and last month of the index inside the window."""
        low = 0 if since is None else int(np.searchsorted(self.months, since, side="left"))
        high = len(self.months) - 1
        if until is not None:
            high = int(np.searchsorted(self.months, until, side="right")) - 1
        return low, high

    def profiles_for(self, since: str | None, until: str | None) -> Profiles:
        if since is None and until is None:
            return self._all
        low, high = self.month_range(since, until)
        return self._profiles((self._month >= low) & (self._month <= high))

    def _mask(self, names: Sequence[str], vocabulary: Sequence[str]) -> int:
        return sum(1 << vocabulary.index(n) for n in names)

    def select(self, entity_filter: EntityFilter) -> Population:
        """The population a filter selects."""
        profiles = self.profiles_for(entity_filter.since, entity_filter.until)
        agencies = profiles.agencies
        needed = self._mask(entity_filter.all_of, self.agencies)
        excluded = self._mask(entity_filter.none_of, self.agencies)
        flags = self._mask(entity_filter.flags, self.flags)
        selected = (profiles.area >= 0) & (
            np.bitwise_count(agencies.astype(np.uint64)) >= entity_filter.min_agencies
        )
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

    def trend_key(self, population: Population, since: str | None, until: str | None) -> IntArray:
        """Per (entity, month) contact: the cell area * months + month, or -1 if not counted."""
        low, high = self.month_range(since, until)
        entity, month = self._pair_entity, self._pair_month
        counted = population.selected[entity] & (month >= low) & (month <= high)
        return np.where(counted, population.profiles.area[entity] * len(self.months) + month, -1)

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
        histogram = np.bincount(masks, minlength=1 << agencies)
        bits = agency_bits(np.arange(1 << agencies), agencies)
        return np.asarray(bits.T @ (histogram[:, None] * bits), dtype=np.int64)
    wide = agency_bits(masks, agencies).astype(np.float64)
    return np.rint(wide.T @ wide).astype(np.int64)


def _group_starts(sorted_keys: IntArray) -> IntArray:
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)
