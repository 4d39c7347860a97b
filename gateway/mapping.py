"""Column mappings: each agency's own column names and formats onto the canonical fields.

A mapping file (YAML)::

    mapping_version: 1
    source: police
    columns:
      record_id: ref
      given_name: forename
      date_of_birth: {column: dob, format: "%d/%m/%Y"}
      sex: {column: gender, codes: {M: M, F: F}}
      event_date: {column: incident_date, format: "%d/%m/%Y"}

A canonical field the agency does not hold is left out. ``format`` is a ``strptime`` format,
or a list of them tried in order (``["%d/%m/%Y", "%d-%b-%Y", "%d/%m/%y"]``);
two-digit years need ``century_pivot`` (yy <= pivot is 20yy, else 19yy). ``codes`` maps the
agency's sex codes onto M and F.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keys.errors import ConfigError

# The canonical CSV columns (design, contracts), then the attribute fields a mapping may add.
CANONICAL_COLUMNS = (
    "record_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "postcode",
    "address",
    "nhs_number",
)
CANONICAL_FIELDS = (*CANONICAL_COLUMNS, "event_date")
DATE_FIELDS = ("date_of_birth", "event_date")
ISO_DATE = "%Y-%m-%d"


@dataclass(frozen=True)
class ColumnRule:
    column: str
    format: str | tuple[str, ...] = ISO_DATE  # several: the first that fits
    century_pivot: int | None = None
    codes: dict[str, str] | None = None


@dataclass(frozen=True)
class ColumnMapping:
    source: str
    columns: dict[str, ColumnRule] = field(default_factory=dict)

    def rule(self, canonical: str) -> ColumnRule | None:
        return self.columns.get(canonical)


def canonical_mapping(source: str, header: list[str]) -> ColumnMapping:
    """The identity mapping for a canonical CSV: canonical columns present in the header."""
    columns = {name: ColumnRule(column=name) for name in CANONICAL_FIELDS if name in header}
    return ColumnMapping(source=source, columns=columns)


def _rule(canonical: str, raw: Any, where: str) -> ColumnRule:
    if isinstance(raw, str):
        return ColumnRule(column=raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("column"), str):
        raise ConfigError(
            f"{where}: columns.{canonical} must be a column name or a mapping with 'column'",
            fix=f"write e.g. `{canonical}: my_column`",
        )
    pivot = raw.get("century_pivot")
    if pivot is not None and not (isinstance(pivot, int) and 0 <= pivot <= 99):
        raise ConfigError(
            f"{where}: columns.{canonical}.century_pivot must be a whole number 0..99",
            fix="write e.g. `century_pivot: 30`",
        )
    given = raw.get("format", ISO_DATE)
    fmt: str | tuple[str, ...] = (
        tuple(str(f) for f in given) if isinstance(given, list) and given else str(given)
    )
    if any("%y" in f for f in ((fmt,) if isinstance(fmt, str) else fmt)) and pivot is None:
        raise ConfigError(
            f"{where}: columns.{canonical} has a two-digit year format but no century_pivot",
            fix="add e.g. `century_pivot: 30` (yy <= 30 reads as 20yy)",
        )
    codes = raw.get("codes")
    return ColumnRule(
        column=raw["column"],
        format=fmt,
        century_pivot=None if pivot is None else int(pivot),
        codes={str(k): str(v) for k, v in codes.items()} if isinstance(codes, dict) else None,
    )


def parse_mapping(document: Any, *, where: str = "column mapping") -> ColumnMapping:
    if not isinstance(document, dict) or not isinstance(document.get("columns"), dict):
        raise ConfigError(f"{where}: no 'columns' mapping", fix="see docs/formats.md")
    unknown = [name for name in document["columns"] if name not in CANONICAL_FIELDS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown canonical field(s) {', '.join(map(str, unknown))}",
            fix=f"map only {', '.join(CANONICAL_FIELDS)}",
        )
    if "record_id" not in document["columns"]:
        raise ConfigError(f"{where}: record_id is not mapped", fix="map your record ID column")
    columns = {str(k): _rule(str(k), v, where) for k, v in document["columns"].items()}
    return ColumnMapping(source=str(document.get("source", "")), columns=columns)


def load_mapping(path: Path) -> ColumnMapping:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read mapping {path}: {exc}", fix="check path and YAML") from None
    return parse_mapping(document, where=str(path))
