"""Synthetic *linked* entities, straight into a linkage store: for the hot-spot benchmark and
the dashboard tests, which need a large linked population but no encodings or gateways.

The shape follows :mod:`placelink.town`: Seabrook's postcode sectors ("SB3 2", five per
district), need concentrated in a few areas, agencies likelier to know a person the higher
their need, records spread over 2024-2026 with some people moving (their older records carry
the old area), and per-agency flags a policy may declare (police ``asb_incident``, children's
services ``open_case``, school ``missed_school``). Seeded: the same arguments give the same
records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from placelink.town import AGENCIES, PERIOD_END, PERIOD_START

FLAGS = {"police": "asb_incident", "childrens_services": "open_case", "school": "missed_school"}
_BASE = {
    "police": -3.0,
    "childrens_services": -3.6,
    "housing": -1.8,
    "health": -0.4,
    "school": -1.2,
}
_SECTORS_PER_DISTRICT = 5
Record = tuple[str, str, dict[str, Any]]


def sectors(areas: int) -> list[str]:
    """The town's sector codes, as :func:`placelink.town.generate_town` names them."""
    per = _SECTORS_PER_DISTRICT
    return [f"SB{i // per + 1} {i % per + 1}" for i in range(areas)]


def months() -> list[str]:
    first, last = PERIOD_START.year * 12, PERIOD_END.year * 12 + PERIOD_END.month - 1
    return [
        f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first + PERIOD_START.month - 1, last + 1)
    ]


def _entity_chunk(
    rng: np.random.Generator, first: int, size: int, need_by_area: Any
) -> list[Record]:
    areas, month_names = sectors(len(need_by_area)), months()
    home = rng.choice(len(areas), size=size, p=_area_weights(need_by_area))
    need = np.clip(need_by_area[home] + rng.normal(0, 0.15, size), 0, 1)
    known = np.stack(
        [rng.random(size) < 1 / (1 + np.exp(-(_BASE[a] + 5.0 * need))) for a in AGENCIES], axis=1
    )
    known[~known.any(axis=1), AGENCIES.index("health")] = True
    moved = rng.random(size) < 0.1
    old_home = rng.integers(len(areas), size=size)
    records: list[Record] = []
    for row in range(size):
        entity = f"E{first + row:07d}"
        for index in np.flatnonzero(known[row]):
            agency = AGENCIES[index]
            month = int(rng.integers(len(month_names)))
            area = old_home[row] if moved[row] and month < len(month_names) // 2 else home[row]
            attributes = {"area": areas[area], "event_month": month_names[month]}
            if agency in FLAGS:
                attributes[FLAGS[agency]] = "1" if rng.random() < 0.2 + 0.5 * need[row] else "0"
            records.append((entity, agency, attributes))
    return records


def _area_weights(need_by_area: Any) -> Any:
    weights = 0.5 + need_by_area
    return weights / weights.sum()


def linked_records(
    entities: int, *, seed: int = 7, areas: int = 30, chunk: int = 50_000
) -> Iterator[list[Record]]:
    """Chunks of (entity id, agency, attributes) records for ``entities`` linked entities."""
    rng = np.random.default_rng([seed, 99])
    need_by_area = rng.beta(1.2, 7.0, size=areas)
    hot = rng.permutation(areas)[: max(1, round(areas * 0.12))]
    need_by_area[hot] = np.clip(need_by_area[hot] + 0.45, 0, 1)
    for first in range(0, entities, chunk):
        yield _entity_chunk(rng, first, min(chunk, entities - first), need_by_area)


def declare_flags(policy_document: dict[str, Any]) -> dict[str, Any]:
    """The policy document with the flags above declared as released attributes."""
    items = list(policy_document["data_items"])
    items += [
        {"id": flag, "field": flag, "category": "personal", "transform": "generalise",
         "generalisation": "flag", "attribute": flag}
        for flag in FLAGS.values()
    ]  # fmt: skip
    return {**policy_document, "data_items": items}
