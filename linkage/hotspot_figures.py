"""From a parsed query to the grid of counts it publishes, before disclosure control: the true
(or noisy) count per cell, the cells a differencing check refuses, the sums that secondary
suppression must protect, and the population keys later queries are compared with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linkage.differencing import Keyed, tiny_cells, tiny_pairs, tiny_whole
from linkage.disclosure import SumConstraint, protect
from linkage.hotspot_answers import HotspotAnswer, PolicyRef
from linkage.hotspot_index import HotspotIndex
from linkage.hotspot_query import EntityFilter, HotspotQuery
from linkage.privacy import PrivacyBudget, add_noise
from policies.model import DisclosureControl

TOTAL_ROW = "\x00total"  # a row key no area can have
Cell = tuple[str, str]


@dataclass
class Figures:
    row_label: str
    rows: list[str]
    columns: list[str]
    counts: dict[Cell, int]
    control: DisclosureControl
    has_total: bool = False
    refused: set[Cell] = field(default_factory=set)
    sensitivity: int = 0
    keys: dict[tuple[Any, ...], Keyed] = field(default_factory=dict)

    def constraints(self) -> list[SumConstraint[Cell]]:
        if not self.has_total:
            return []
        return [
            SumConstraint(tuple((r, c) for r in self.rows), (TOTAL_ROW, c)) for c in self.columns
        ]

    def publish(
        self, ref: PolicyRef, query: HotspotQuery, disclosure: dict[str, Any]
    ) -> HotspotAnswer:
        cells = protect(
            self.counts, self.control, constraints=self.constraints(), refused=self.refused
        )
        total = {c: cells.pop((TOTAL_ROW, c)) for c in self.columns} if self.has_total else None
        return HotspotAnswer(
            ref, query, self.row_label, self.rows, self.columns, cells, disclosure, total
        )


def population_key(index: HotspotIndex, kind: str, entity_filter: EntityFilter) -> Keyed:
    """The keyed population a query is compared by (see :mod:`linkage.differencing`)."""
    population = index.select(entity_filter)
    if kind == "trend":
        key = index.trend_key(population, entity_filter.since, entity_filter.until)
        span = index.contact_span(entity_filter.since, entity_filter.until)
        return Keyed.cells(key, len(index.areas) * len(index.months), within=span)
    if kind == "cooccurrence":
        masks = np.where(population.selected, population.profiles.agencies, 0)
        return Keyed.pairs(masks, len(index.agencies))
    return Keyed.cells(population.area_key(), len(index.areas))


def _fingerprint_key(kind: str, entity_filter: EntityFilter) -> tuple[Any, ...]:
    return (kind, json.dumps(entity_filter.canonical(), sort_keys=True))


def _table(
    index: HotspotIndex, query: HotspotQuery, history: list[Keyed], budget: PrivacyBudget | None,
    control: DisclosureControl,
) -> Figures:  # fmt: skip
    populations = query.populations()
    columns = [name for name, _ in populations]
    figures = Figures("area", list(index.areas), columns, {}, control, has_total=True)
    figures.sensitivity = len(columns)
    matrix = np.zeros((len(index.areas), len(columns)), dtype=np.int64)
    seen: list[Keyed] = []
    for j, (name, entity_filter) in enumerate(populations):
        keyed = population_key(index, "table", entity_filter)
        figures.keys[_fingerprint_key("table", entity_filter)] = keyed
        matrix[:, j] = keyed.counts
        for other in [*seen, *history]:
            for row in np.flatnonzero(tiny_cells(keyed, other, control.min_cell)):
                figures.refused.add((index.areas[int(row)], name))
            if tiny_whole(keyed, other, control.min_cell):
                figures.refused.add((TOTAL_ROW, name))
        seen.append(keyed)
    if budget is not None:
        matrix = add_noise(matrix, sensitivity=len(columns), epsilon=budget.epsilon_per_query)
    for i, area in enumerate(index.areas):
        for j, name in enumerate(columns):
            figures.counts[(area, name)] = int(matrix[i, j])
    for j, name in enumerate(columns):
        figures.counts[(TOTAL_ROW, name)] = int(matrix[:, j].sum())
    return figures


def _trend(
    index: HotspotIndex, query: HotspotQuery, history: list[Keyed], budget: PrivacyBudget | None,
    control: DisclosureControl,
) -> Figures:  # fmt: skip
    entity_filter = query.filter
    low, high = index.month_range(entity_filter.since, entity_filter.until)
    months = list(index.months[low : high + 1])
    keyed = population_key(index, "trend", entity_filter)
    grid = keyed.counts.reshape(len(index.areas), len(index.months))[:, low : high + 1]
    figures = Figures("area", list(index.areas), months, {}, control)
    figures.keys[_fingerprint_key("trend", entity_filter)] = keyed
    figures.sensitivity = max(1, len(months))
    for other in history:
        for flat in np.flatnonzero(tiny_cells(keyed, other, control.min_cell)):
            row, column = divmod(int(flat), len(index.months))
            if low <= column <= high:
                figures.refused.add((index.areas[row], index.months[column]))
    if budget is not None and grid.size:
        grid = add_noise(grid, sensitivity=figures.sensitivity, epsilon=budget.epsilon_per_query)
    for i, area in enumerate(index.areas):
        for j, month in enumerate(months):
            figures.counts[(area, month)] = int(grid[i, j])
    return figures


def _cooccurrence(
    index: HotspotIndex, query: HotspotQuery, history: list[Keyed], budget: PrivacyBudget | None,
    control: DisclosureControl,
) -> Figures:  # fmt: skip
    agencies = list(index.agencies)
    n = len(agencies)
    keyed = population_key(index, "cooccurrence", query.filter)
    matrix = keyed.counts
    figures = Figures("agency", agencies, agencies, {}, control)
    figures.keys[_fingerprint_key("cooccurrence", query.filter)] = keyed
    figures.sensitivity = n * (n + 1) // 2
    for other in history:
        refused = tiny_pairs(keyed, other, n, control.min_cell)
        for a, b in zip(*np.nonzero(refused), strict=True):
            figures.refused.add((agencies[a], agencies[b]))
    upper = np.triu_indices(n)
    if budget is not None and n:
        noisy = add_noise(
            matrix[upper], sensitivity=figures.sensitivity, epsilon=budget.epsilon_per_query
        )
        matrix = np.zeros_like(matrix)
        matrix[upper] = noisy
        matrix = np.triu(matrix) + np.triu(matrix, 1).T
    for a, first in enumerate(agencies):
        for b, second in enumerate(agencies):
            figures.counts[(first, second)] = int(matrix[a, b])
    return figures


def compute_figures(
    index: HotspotIndex,
    query: HotspotQuery,
    control: DisclosureControl,
    history: list[Keyed],
    budget: PrivacyBudget | None,
) -> Figures:
    """The query's grid: true counts with differencing refusals, or noisy counts under a
    budget (then ``history`` is empty: the noise answers differencing)."""
    build = {"table": _table, "trend": _trend, "cooccurrence": _cooccurrence}[query.kind]
    return build(index, query, history, budget, control)
