"""Generalisations the policy may declare for released attributes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from gateway.normalise import postcode_district, postcode_sector
from keys.errors import PolicyError

Value = str | dt.date


def _month(value: Value) -> str:
    if not isinstance(value, dt.date):
        raise TypeError("month needs a date")
    return f"{value.year:04d}-{value.month:02d}"


def _year(value: Value) -> str:
    if not isinstance(value, dt.date):
        raise TypeError("year needs a date")
    return f"{value.year:04d}"


def _sector(value: Value) -> str | None:
    """A UK postcode's sector; None for a foreign one (no sector is defined for it)."""
    text = str(value)
    return postcode_sector(text) if " " in text else None


def _district(value: Value) -> str | None:
    text = str(value)
    return postcode_district(text) if " " in text else None


_TRUE = frozenset({"1", "y", "yes", "true", "t"})


def _flag(value: Value) -> str:
    """A yes/no flag (open case, ASB incident, ...) as "1" or "0"; hot-spot queries filter on
    flags a policy declares with this generalisation."""
    return "1" if str(value).strip().lower() in _TRUE else "0"


GENERALISATIONS: dict[str, Callable[[Value], str | None]] = {
    "postcode_sector": _sector,
    "postcode_district": _district,
    "month": _month,
    "year": _year,
    "flag": _flag,
}


def generaliser(name: str) -> Callable[[Value], str | None]:
    """The function for a policy's generalisation name; unknown names are refused."""
    try:
        return GENERALISATIONS[name]
    except KeyError:
        raise PolicyError(
            f"the policy asks for an unknown generalisation {name!r}",
            fix=f"use one of {', '.join(GENERALISATIONS)}",
        ) from None
