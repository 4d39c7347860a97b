"""Reading an agency's records through its column mapping, and normalising them.

Invalid values are counted per field and, by default, treated as missing; ``strict=True``
rejects the whole batch instead. Reports name fields and row numbers, never values.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import is_
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.codebook import CodedColumn, NormalValue, distinct, flags
from gateway.columnar import ArrowColumn, read_plain_csv
from gateway.columns import COLUMN_NORMALISERS, INVALID, iso_dates
from gateway.mapping import DATE_FIELDS, ColumnMapping, ColumnRule
from gateway.normalise import (
    EARLIEST_BIRTH,
    ISO_FORMAT,
    InvalidValue,
    normalise_address,
    normalise_birth_date,
    normalise_family_name,
    normalise_given_name,
    normalise_nhs_number,
    normalise_postcode_or_foreign,
    normalise_sex,
    parse_date,
)
from keys.errors import ConfigError, InputError


@dataclass
class FieldReport:
    """Counts for one canonical field across a batch."""

    valid: int = 0
    invalid: int = 0
    missing: int = 0
    first_invalid_rows: list[int] = field(default_factory=list)
    unverified: int = 0  # of the valid: usable, but failing the UK check (a foreign postcode)

    @property
    def validity(self) -> float:
        seen = self.valid + self.invalid
        return self.valid / seen if seen else 1.0


@dataclass
class NormalisedRecords:
    """Normalised values by canonical field, one list entry per record; ``coded`` keeps the
    same values as code books where normalising made them (the encoders' fast path: code that
    changes a field's ``values`` drops the field from ``coded``)."""

    record_ids: list[str]
    values: dict[str, list[NormalValue]]
    report: dict[str, FieldReport]
    coded: dict[str, CodedColumn] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.record_ids)

    def coded_column(self, name: str) -> CodedColumn:
        """A field as a code book (all missing when the batch lacks the field)."""
        found = self.coded.get(name)
        if found is not None:
            return found
        if name not in self.values:
            return CodedColumn([None], np.zeros(len(self), dtype=np.int64))
        return CodedColumn.of(self.values[name])


def read_csv_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """Header and rows of a CSV file (UTF-8, with or without BOM)."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", fix="check the path") from None
    reader = csv.DictReader(handle)
    header = list(reader.fieldnames or [])

    def rows() -> Iterator[dict[str, str]]:
        with handle:
            yield from reader

    return header, rows()


def _normalise(canonical: str, raw: str, rule: ColumnRule, today: dt.date) -> NormalValue:
    if canonical == "date_of_birth":
        return normalise_birth_date(raw, rule.format, century_pivot=rule.century_pivot, today=today)
    if canonical == "event_date":
        text = raw.strip()
        return parse_date(text, rule.format, century_pivot=rule.century_pivot) if text else None
    if canonical == "sex":
        return normalise_sex(raw, rule.codes)
    simple = {
        "given_name": normalise_given_name,
        "family_name": normalise_family_name,
        "address": normalise_address,
        "nhs_number": normalise_nhs_number,
    }
    return simple[canonical](raw) if canonical in simple else raw.strip() or None


def check_header(header: list[str], mapping: ColumnMapping, where: str) -> None:
    missing = [r.column for r in mapping.columns.values() if r.column not in header]
    if missing:
        raise ConfigError(
            f"{where}: the mapping names column(s) not in the header: {', '.join(missing)}",
            fix="correct the column names in the mapping file",
        )


Columns = Mapping[str, Sequence[str]]


def read_csv_columns(path: Path) -> tuple[list[str], dict[str, Sequence[str]]]:
    """Header and columns of a CSV file (UTF-8, with or without BOM); blank lines are skipped,
    short rows padded with empty values, extra values ignored. A large plain file is read by
    Arrow (:mod:`gateway.columnar`, the same values), any other by the csv module."""
    plain = read_plain_csv(path)
    if plain is not None:
        return plain[0], dict(plain[1])
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            width = len(header)
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", fix="check the path") from None
    except (UnicodeDecodeError, csv.Error):
        raise InputError(
            f"{path} is not a readable UTF-8 CSV file", fix="export it as CSV in UTF-8"
        ) from None
    if set(map(len, rows)) - {width}:  # blank, short or long rows: skipped, padded, cut
        rows = [r if len(r) == width else (r + [""] * width)[:width] for r in rows if r]
    flat = list(chain.from_iterable(rows))  # columns by slicing: no per-row work in Python
    return header, {name: flat[index::width] for index, name in enumerate(header)}


def normalise_rows(
    rows: Iterable[dict[str, str]],
    mapping: ColumnMapping,
    *,
    today: dt.date,
    strict: bool = False,
    where: str = "input",
) -> NormalisedRecords:
    """Normalise every mapped field of every row; see the module docstring for invalid values."""
    table = list(rows)
    wanted = {rule.column for rule in mapping.columns.values()}
    columns = {column: [row.get(column) or "" for row in table] for column in wanted}
    return normalise_columns(columns, len(table), mapping, today=today, strict=strict, where=where)


def normalise_columns(
    columns: Columns,
    count: int,
    mapping: ColumnMapping,
    *,
    today: dt.date,
    strict: bool = False,
    where: str = "input",
    record_ids: list[str] | None = None,
    expand: Collection[str] | None = None,
) -> NormalisedRecords:
    """As :func:`normalise_rows`, over ``count`` rows given column by column (``record_ids``:
    already checked by the caller). ``expand`` names the fields whose per-record ``values``
    are wanted (default: all); every field is kept as a code book in ``coded``.

    Each distinct raw value of a column is normalised once: extracts repeat names, dates and
    postcodes.
    """
    empty = [""] * count
    if record_ids is None:
        record_ids = record_ids_of(columns, count, mapping, where)
    out = NormalisedRecords(record_ids, {}, {})
    for name in (n for n in mapping.columns if n != "record_id"):
        rule = mapping.columns[name]
        raw = columns.get(rule.column, empty)
        coded, out.report[name] = normalise_column(name, raw, rule, today)
        out.coded[name] = coded
        if expand is None or name in expand:
            out.values[name] = coded.expand()
    enforce_strict(out.report, strict, where)
    return out


def record_ids_of(columns: Columns, count: int, mapping: ColumnMapping, where: str) -> list[str]:
    """Record IDs; an empty or repeated one is refused, naming its row (the header is row 1)."""
    column = columns.get(mapping.columns["record_id"].column, [""] * count)
    if isinstance(column, ArrowColumn) and column.plain():  # nothing to strip, none empty
        ids = column.tolist()
        if len(set(ids)) == len(ids):
            return ids
    ids = list(map(str.strip, column.tolist() if isinstance(column, ArrowColumn) else column))
    if "" not in ids and len(set(ids)) == len(ids):
        return ids
    seen: set[str] = set()
    for number, record_id in enumerate(ids, start=2):
        if not record_id or record_id in seen:
            raise InputError(
                f"{where}, row {number}: the record ID is empty or repeated",
                fix="give every row a unique value in the record ID column",
            )
        seen.add(record_id)
    raise AssertionError("unreachable: a repeat was detected but not found")


@dataclass
class _Distinct:
    """Canonical form of each distinct raw value (None when invalid), the invalid ones, and
    the usable ones that fail the UK check; from a column normaliser, the canonical forms
    come as a list in the order of the distinct values (``aligned``), with a flag per value
    for the invalid ones, instead of ``canonical`` and ``invalid``."""

    canonical: dict[str, NormalValue] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)
    unverified: set[str] = field(default_factory=set)
    aligned: list[NormalValue] | None = None
    invalid_flags: npt.NDArray[np.bool_] | None = None


def _normalise_distinct(
    name: str, distinct: list[str], rule: ColumnRule, today: dt.date
) -> _Distinct:
    out = _Distinct()
    column_normaliser = COLUMN_NORMALISERS.get(name)
    if column_normaliser is not None:
        results = column_normaliser(distinct)
        bad = np.fromiter(map(is_, results, repeat(INVALID)), dtype=np.bool_, count=len(results))
        out.invalid_flags, out.aligned = bad, results  # type: ignore[assignment]
        if bad.any():
            book = np.empty(len(results), dtype=object)
            book[:] = results
            book[bad] = None
            out.aligned = book.tolist()
        return out
    if name in DATE_FIELDS and rule.format == ISO_FORMAT:
        out.canonical = _quick_dates(name, distinct, today)
        distinct = [value for value in distinct if value not in out.canonical]
    for value in distinct:
        try:
            if name == "postcode":
                out.canonical[value], uk = normalise_postcode_or_foreign(value)
                if not uk:
                    out.unverified.add(value)
            else:
                out.canonical[value] = _normalise(name, value, rule, today)
        except InvalidValue:
            out.canonical[value] = None
            out.invalid.add(value)
    return out


def _quick_dates(name: str, distinct: list[str], today: dt.date) -> dict[str, NormalValue]:
    """The plain ISO dates among ``distinct`` that are valid for the field (the rest, left
    out, go through the per-value normaliser, which decides them)."""
    earliest, latest = (
        (EARLIEST_BIRTH, today) if name == "date_of_birth" else (dt.date.min, dt.date.max)
    )
    return {
        value: parsed
        for value, parsed in zip(distinct, iso_dates(distinct), strict=True)
        if parsed is not None and earliest <= parsed <= latest
    }


def normalise_column(
    name: str, raw: Sequence[str], rule: ColumnRule, today: dt.date
) -> tuple[CodedColumn, FieldReport]:
    """One field's normalised values (invalid ones as missing, as a code book) and its report."""
    unique, rows = raw.book() if isinstance(raw, ArrowColumn) else distinct(raw)
    found = _normalise_distinct(name, unique, rule, today)
    if found.aligned is not None:
        coded, invalid = CodedColumn(found.aligned, rows), found.invalid_flags
    else:
        coded = CodedColumn(list(map(found.canonical.__getitem__, unique)), rows)
        invalid = flags(unique, found.invalid) if found.invalid else None
    report = FieldReport()
    if invalid is not None and invalid.any():
        invalid_rows = np.flatnonzero(invalid[rows])
        report.invalid = len(invalid_rows)
        report.first_invalid_rows = [int(i) + 2 for i in invalid_rows[:5]]  # the header is row 1
    if found.unverified:
        report.unverified = int(np.count_nonzero(flags(unique, found.unverified)[rows]))
    empty = len(raw) - int(np.count_nonzero(coded.present()))
    report.missing, report.valid = empty - report.invalid, len(raw) - empty
    return coded, report


def enforce_strict(report: dict[str, FieldReport], strict: bool, where: str) -> None:
    bad = [name for name, counts in report.items() if counts.invalid]
    if strict and bad:
        rows = sorted({r for name in bad for r in report[name].first_invalid_rows})
        raise InputError(
            f"{where}: strict mode, invalid values in field(s) {', '.join(bad)} "
            f"(first rows: {', '.join(map(str, rows))})",
            fix="correct those values, or run without --strict to treat them as missing",
        )


__all__ = [
    "DATE_FIELDS",
    "CodedColumn",
    "Columns",
    "FieldReport",
    "NormalValue",
    "NormalisedRecords",
    "enforce_strict",
    "normalise_columns",
    "normalise_rows",
    "read_csv_columns",
    "read_csv_rows",
    "record_ids_of",
]
