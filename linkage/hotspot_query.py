"""The hot-spot query model: what an analyst may ask, parsed and checked before any count.

A query has a *kind* and a *filter* on linked entities:

- ``table``: entities per area, one column per measure (each measure narrows the filter), with
  a total row over all areas;
- ``trend``: entities per area and month: for each month of the window, the entities meeting
  the filter that were in contact with any agency that month, by the area they count in;
- ``cooccurrence``: for each pair of agencies, the entities meeting the filter known to both
  (the diagonal: known to that agency).

The filter: known to at least ``min_agencies`` agencies, to every agency of ``all_of``, to none
of ``none_of`` (known to housing but not health: ``all_of: [housing], none_of: [health]``),
carrying every flag of ``flags`` (flags are attributes the policy declares with the
generalisation ``flag``), and a time window ``since`` .. ``until`` (months, inclusive). With a
window only records whose contact month lies in it count, both for the agencies that know an
entity and for the area it counts in (the area of its most recent record in the window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from keys.errors import InputError, PolicyError

Kind = Literal["table", "trend", "cooccurrence"]
KINDS: tuple[Kind, ...] = ("table", "trend", "cooccurrence")
MAX_MEASURES = 8
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")


@dataclass(frozen=True)
class EntityFilter:
    """Which linked entities count (see the module docstring)."""

    min_agencies: int = 1
    all_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    def narrowed(self, other: EntityFilter) -> EntityFilter:
        """Both filters at once (a measure inside a table narrows the table's filter)."""
        return EntityFilter(
            max(self.min_agencies, other.min_agencies),
            tuple(sorted({*self.all_of, *other.all_of})),
            tuple(sorted({*self.none_of, *other.none_of})),
            tuple(sorted({*self.flags, *other.flags})),
            self.since,
            self.until,
        )

    def canonical(self) -> dict[str, Any]:
        return {
            "min_agencies": self.min_agencies,
            "all_of": list(self.all_of),
            "none_of": list(self.none_of),
            "flags": list(self.flags),
            "since": self.since,
            "until": self.until,
        }


@dataclass(frozen=True)
class NamedMeasure:
    """One column of a table: a name and the filter it adds."""

    name: str
    filter: EntityFilter = field(default_factory=EntityFilter)


@dataclass(frozen=True)
class HotspotQuery:
    kind: Kind
    by: str
    filter: EntityFilter
    measures: tuple[NamedMeasure, ...]

    def canonical(self) -> dict[str, Any]:
        """The query as logged and fingerprinted (no values of any person, ever)."""
        return {
            "kind": self.kind,
            "by": self.by,
            "filter": self.filter.canonical(),
            "measures": [{"name": m.name, **m.filter.canonical()} for m in self.measures],
        }

    def populations(self) -> list[tuple[str, EntityFilter]]:
        """(column name, full filter) of each population the answer counts."""
        if self.kind != "table":
            return [("entities", self.filter)]
        return [(m.name, self.filter.narrowed(m.filter)) for m in self.measures]


@dataclass(frozen=True)
class QueryVocabulary:
    """What the policy lets a query name: the grouping attribute, agencies and flags."""

    area_attribute: str
    agencies: tuple[str, ...]
    flags: tuple[str, ...]


def _bad(field_name: str, fix: str) -> InputError:
    return InputError(f"hot-spot query: {field_name} is not valid", fix=fix)


def _names(raw: Any, field_name: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise _bad(field_name, f"give a list of {what} names")
    unknown = [x for x in raw if x not in allowed]
    if unknown:
        raise PolicyError(
            f"hot-spot query: {field_name} names {what}s the policy does not declare",
            fix=f"use only {', '.join(allowed) or 'none (the policy declares none)'}",
        )
    return tuple(sorted(set(raw)))


def _count(raw: Any, field_name: str, upper: int) -> int:
    if raw is None:
        return 1
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _bad(field_name, f"give a whole number from 1 to {upper}")
    try:
        value = int(raw)
    except ValueError:
        raise _bad(field_name, f"give a whole number from 1 to {upper}") from None
    if not 1 <= value <= upper:
        raise _bad(field_name, f"give a whole number from 1 to {upper}")
    return value


def _month(raw: Any, field_name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _MONTH.match(raw):
        raise _bad(field_name, "give a month as YYYY-MM")
    return raw


def parse_filter(raw: Any, vocabulary: QueryVocabulary, where: str) -> EntityFilter:
    """A filter from its JSON form; names the field at fault, never echoes a value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _bad(where, "give an object with min_agencies, all_of, none_of, flags, since, until")
    agencies = vocabulary.agencies
    since, until = (
        _month(raw.get("since"), f"{where}.since"),
        _month(raw.get("until"), f"{where}.until"),
    )
    if since and until and since > until:
        raise _bad(f"{where}.since", "since must not be after until")
    result = EntityFilter(
        _count(raw.get("min_agencies"), f"{where}.min_agencies", max(1, len(agencies))),
        _names(raw.get("all_of"), f"{where}.all_of", agencies, "agency"),
        _names(raw.get("none_of"), f"{where}.none_of", agencies, "agency"),
        _names(raw.get("flags"), f"{where}.flags", vocabulary.flags, "flag"),
        since,
        until,
    )
    if set(result.all_of) & set(result.none_of):
        raise _bad(f"{where}.none_of", "an agency cannot be in both all_of and none_of")
    return result


def _measures(raw: Any, vocabulary: QueryVocabulary) -> tuple[NamedMeasure, ...]:
    if raw is None:
        return (NamedMeasure("entities"),)
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MEASURES:
        raise _bad("measures", f"give a list of 1 to {MAX_MEASURES} {{name, ...filter}} objects")
    measures = []
    for index, item in enumerate(raw):
        where = f"measures[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad(where, "give each measure a name and filter keys")
        if not _NAME.match(item["name"]) or item["name"] == "area":
            raise _bad(f"{where}.name", "use letters, digits and _ (up to 40), not 'area'")
        window = {k: v for k, v in item.items() if k != "name"}
        if window.get("since") is not None or window.get("until") is not None:
            raise _bad(where, "set the time window on the query's filter, not on a measure")
        measures.append(NamedMeasure(item["name"], parse_filter(window, vocabulary, where)))
    if len({m.name for m in measures}) != len(measures):
        raise _bad("measures", "give each measure a different name")
    return tuple(measures)


def parse_query(raw: Any, vocabulary: QueryVocabulary) -> HotspotQuery:
    """A query from its JSON form (the API's body, the CLI's options)."""
    if not isinstance(raw, dict):
        raise InputError(
            "the hot-spot query must be a JSON object", fix='send {"kind": ..., "filter": ...}'
        )
    kind = raw.get("kind", "table")
    if kind not in KINDS:
        raise _bad("kind", f"use one of {', '.join(KINDS)}")
    by = raw.get("by", vocabulary.area_attribute)
    if by != vocabulary.area_attribute:
        raise PolicyError(
            "hot-spot query: by names an attribute the policy does not release for grouping",
            fix=f"group by {vocabulary.area_attribute!r}",
        )
    measures = _measures(raw.get("measures"), vocabulary) if kind == "table" else ()
    if kind != "table" and raw.get("measures") is not None:
        raise _bad("measures", "only a table query has measures; put the filter in 'filter'")
    return HotspotQuery(kind, by, parse_filter(raw.get("filter"), vocabulary, "filter"), measures)
