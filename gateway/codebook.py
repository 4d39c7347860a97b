"""Code books: a column of many values as its distinct values and each row's index into them.

Extracts repeat names, dates and postcodes, so a batch is normalised and encoded one distinct
value at a time and spread back to its rows with one numpy ``take``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import count, repeat
from operator import is_
from typing import TypeVar

import numpy as np
import numpy.typing as npt

H = TypeVar("H", bound=Hashable)
NormalValue = str | dt.date | None
Rows = npt.NDArray[np.int64]


def distinct(values: Sequence[H]) -> tuple[list[H], Rows]:
    """Distinct values (None among them when missing) in first-seen order, and each value's
    index into them."""
    first: dict[H, int] = {}  # value -> the first row that holds it, in first-seen order
    rows = np.fromiter(map(first.setdefault, values, count()), dtype=np.int64, count=len(values))
    number = np.zeros(len(values), dtype=np.int64)  # first row -> the value's number
    number[np.fromiter(first.values(), dtype=np.int64, count=len(first))] = np.arange(len(first))
    return list(first), number[rows]


def flags(values: Sequence[object], among: set[str] | None) -> npt.NDArray[np.bool_]:
    """Which values are in ``among`` (or are None, when ``among`` is None)."""
    tested = map(is_, values, repeat(None)) if among is None else map(among.__contains__, values)
    return np.fromiter(tested, dtype=np.bool_, count=len(values))


@dataclass(frozen=True)
class CodedColumn:
    """One field's normalised values as a code book: ``values[rows[i]]`` is record i's value.
    ``values`` may repeat and hold None (two raw spellings of one name, or invalid values)."""

    values: list[NormalValue]
    rows: Rows

    @classmethod
    def of(cls, values: Sequence[NormalValue]) -> CodedColumn:
        unique, rows = distinct(values)
        return cls(unique, rows)

    def expand(self) -> list[NormalValue]:
        """One value per record."""
        if not self.values:
            return [None] * len(self.rows)
        book = np.empty(len(self.values), dtype=object)
        book[:] = self.values
        expanded: list[NormalValue] = book[self.rows].tolist()
        return expanded

    def present(self) -> npt.NDArray[np.bool_]:
        """Which records have a value."""
        return ~flags(self.values, None)[self.rows]
