"""Reading an agency's records through its column mapping, and normalising them.

Invalid values are counted per field and, by default, treated as missing; ``strict=True``
rejects the whole batch instead. Reports name fields and row numbers, never values.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.mapping import DATE_FIELDS, ColumnMapping, ColumnRule
from gateway.normalise import (
    InvalidValue,
    normalise_address,
    normalise_birth_date,
    normalise_family_name,
    normalise_given_name,
    normalise_nhs_number,
    normalise_postcode,
    normalise_sex,
    parse_date,
)
from keys.errors import ConfigError, InputError

NormalValue = str | dt.date | None


@dataclass
class FieldReport:
    """Counts for one canonical field across a batch."""

    valid: int = 0
    invalid: int = 0
    missing: int = 0
    first_invalid_rows: list[int] = field(default_factory=list)

    @property
    def validity(self) -> float:
        seen = self.valid + self.invalid
        return self.valid / seen if seen else 1.0


@dataclass
class NormalisedRecords:
    """Normalised values by canonical field, one list entry per record."""

    record_ids: list[str]
    values: dict[str, list[NormalValue]]
    report: dict[str, FieldReport]

    def __len__(self) -> int:
        return len(self.record_ids)


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
        "postcode": normalise_postcode,
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


def normalise_rows(
    rows: Iterator[dict[str, str]],
    mapping: ColumnMapping,
    *,
    today: dt.date,
    strict: bool = False,
    where: str = "input",
) -> NormalisedRecords:
    """Normalise every mapped field of every row; see the module docstring for invalid values."""
    fields = [name for name in mapping.columns if name != "record_id"]
    out = NormalisedRecords([], {name: [] for name in fields}, {n: FieldReport() for n in fields})
    id_rule = mapping.columns["record_id"]
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        record_id = (row.get(id_rule.column) or "").strip()
        if not record_id or record_id in seen:
            raise InputError(
                f"{where}, row {number}: the record ID is empty or repeated",
                fix="give every row a unique value in the record ID column",
            )
        seen.add(record_id)
        out.record_ids.append(record_id)
        for name in fields:
            out.values[name].append(
                _field_value(out.report[name], name, row, mapping, today, number)
            )
    _enforce_strict(out.report, strict, where)
    return out


def _field_value(
    report: FieldReport,
    name: str,
    row: dict[str, str],
    mapping: ColumnMapping,
    today: dt.date,
    number: int,
) -> NormalValue:
    rule = mapping.columns[name]
    raw = row.get(rule.column) or ""
    try:
        value = _normalise(name, raw, rule, today)
    except InvalidValue:
        report.invalid += 1
        if len(report.first_invalid_rows) < 5:
            report.first_invalid_rows.append(number)
        return None
    if value is None:
        report.missing += 1
    else:
        report.valid += 1
    return value


def _enforce_strict(report: dict[str, FieldReport], strict: bool, where: str) -> None:
    bad = [name for name, counts in report.items() if counts.invalid]
    if strict and bad:
        rows = sorted({r for name in bad for r in report[name].first_invalid_rows})
        raise InputError(
            f"{where}: strict mode, invalid values in field(s) {', '.join(bad)} "
            f"(first rows: {', '.join(map(str, rows))})",
            fix="correct those values, or run without --strict to treat them as missing",
        )


__all__ = ["DATE_FIELDS", "FieldReport", "NormalisedRecords", "normalise_rows", "read_csv_rows"]
