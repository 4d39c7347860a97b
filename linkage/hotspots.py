"""Hot-spot queries: counts of linked entities per area, by which agencies know them.

An entity is counted once, in the area of its most recent record (latest ``event_month``;
records without a month count as oldest). Only disclosure-controlled figures leave this module
through :func:`published_table`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from linkage.disclosure import Published, publish_count
from policies.model import DisclosureControl


@dataclass(frozen=True)
class Measure:
    """Entities known to at least ``min_agencies`` agencies and to every agency of ``all_of``."""

    name: str
    min_agencies: int = 1
    all_of: tuple[str, ...] = ()

    def counts(self, agencies: frozenset[str]) -> bool:
        return len(agencies) >= self.min_agencies and all(a in agencies for a in self.all_of)


@dataclass(frozen=True)
class EntityRecord:
    """One record's contribution: its entity, source agency, area and month."""

    entity_id: str
    source: str
    area: str | None
    month: str | None


@dataclass
class EntityProfile:
    agencies: set[str] = field(default_factory=set)
    latest: tuple[str, str] | None = None  # (month, area)


def profiles(records: Iterable[EntityRecord]) -> dict[str, EntityProfile]:
    """Agencies and latest area of each entity."""
    found: dict[str, EntityProfile] = defaultdict(EntityProfile)
    for record in records:
        profile = found[record.entity_id]
        profile.agencies.add(record.source)
        if record.area is not None:
            stamp = (record.month or "", record.area)
            if profile.latest is None or stamp > profile.latest:
                profile.latest = stamp
    return found


def raw_table(
    records: Iterable[EntityRecord], measures: list[Measure]
) -> dict[str, dict[str, int]]:
    """True counts: area -> measure -> entities. Never published as is."""
    table: dict[str, dict[str, int]] = {}
    for profile in profiles(records).values():
        if profile.latest is None:
            continue
        area = profile.latest[1]
        row = table.setdefault(area, {m.name: 0 for m in measures})
        agencies = frozenset(profile.agencies)
        for measure in measures:
            row[measure.name] += int(measure.counts(agencies))
    return table


def published_table(
    records: Iterable[EntityRecord], measures: list[Measure], control: DisclosureControl
) -> list[dict[str, Published]]:
    """Rows ``{"area": ..., measure: published count}``, sorted by area."""
    table = raw_table(records, measures)
    return [
        {"area": area, **{name: publish_count(c, control) for name, c in counts.items()}}
        for area, counts in sorted(table.items())
    ]


DEFAULT_MEASURES = [
    Measure("known_to_2plus", min_agencies=2),
    Measure("known_to_3plus", min_agencies=3),
    Measure("police_and_childrens_services", all_of=("police", "childrens_services")),
]
