"""Published hot-spot answers: the figures of one query after disclosure control, with the
treatment of every figure, in the shapes the API, the CSV export and the dashboard use."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from linkage.disclosure import Protected, Treatment
from linkage.hotspot_query import HotspotQuery

TOTAL = "all areas"
RULE = (
    "0 stays 0; 1 to {low} shown as *; {min_cell} and over rounded to the nearest {rounding}; "
    "secondary suppression where a total would reveal a suppressed cell; cells differing from "
    "an earlier answer by 1 to {low} entities suppressed{noise}"
)


@dataclass(frozen=True)
class PolicyRef:
    policy_id: str
    version: str
    policy_hash: str


@dataclass
class HotspotAnswer:
    """One answered query: row labels, column labels and a protected figure per cell."""

    policy: PolicyRef
    query: HotspotQuery
    row_label: str  # "area", or "agency" for the co-occurrence matrix
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Protected]
    disclosure: dict[str, Any]
    total: dict[str, Protected] | None = None
    budget: dict[str, float] | None = None
    query_id: int | None = None
    link_run: int | None = None
    notes: list[str] = field(default_factory=list)

    def treatment_counts(self) -> dict[str, int]:
        counts = {t.value: 0 for t in Treatment}
        for cell in [*self.cells.values(), *(self.total or {}).values()]:
            counts[cell.treatment.value] += 1
        return counts

    def _row(self, label: str, values: dict[str, Protected], attr: str) -> dict[str, Any]:
        return {self.row_label: label, **{c: getattr(values[c], attr) for c in self.columns}}

    def _grid(self, attr: str) -> list[dict[str, Any]]:
        return [
            self._row(r, {c: self.cells[(r, c)] for c in self.columns}, attr) for r in self.rows
        ]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "policy_id": self.policy.policy_id,
            "policy_version": self.policy.version,
            "policy_hash": self.policy.policy_hash,
            "query_id": self.query_id,
            "link_run": self.link_run,
            "kind": self.query.kind,
            "by": self.query.by,
            "query": self.query.canonical(),
            "disclosure": self.disclosure,
            "budget": self.budget,
            "columns": self.columns,
            "rows": self._grid("value"),
            "treatments": self._grid("treatment"),
            "treatment_counts": self.treatment_counts(),
            "notes": self.notes,
        }
        if self.total is not None:
            body["total"] = self._row(TOTAL, self.total, "value")
            body["total_treatments"] = self._row(TOTAL, self.total, "treatment")
        return body

    def to_csv(self) -> str:
        """Published figures only: a header, one line per row, then the total line if any."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([self.row_label, *self.columns])
        for row in self._grid("value"):
            writer.writerow([row[self.row_label], *[row[c] for c in self.columns]])
        if self.total is not None:
            writer.writerow([TOTAL, *[self.total[c].value for c in self.columns]])
        return out.getvalue()
