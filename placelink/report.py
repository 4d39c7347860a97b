"""The demo's task-force report: a self-contained HTML page (no external assets) with the
published hot-spot table and a bar chart of the areas with most people known to 3+ agencies."""

from __future__ import annotations

import html
from typing import Any

from linkage.disclosure import SUPPRESSED

BAR_MEASURE = "known_to_3plus"
LABELS = {
    "known_to_2plus": "known to 2+ agencies",
    "known_to_3plus": "known to 3+ agencies",
    "police_and_childrens_services": "known to police and children's services",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1b1b1b}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.note{color:#555;font-size:.9rem}
"""


def _number(value: Any) -> float:
    return 0.0 if value == SUPPRESSED else float(value)


def bar_chart(rows: list[dict[str, Any]], measure: str = BAR_MEASURE, top: int = 12) -> str:
    """An inline SVG of the top areas by one published measure (suppressed cells as 0)."""
    shown = [r for r in rows if _number(r[measure]) > 0]
    ranked = sorted(shown, key=lambda r: (-_number(r[measure]), r["area"]))[:top]
    peak = max((_number(r[measure]) for r in ranked), default=0.0) or 1.0
    bars = []
    for index, row in enumerate(ranked):
        width = 420 * _number(row[measure]) / peak
        y = 24 * index
        bars.append(
            f'<text x="0" y="{y + 16}">{html.escape(row["area"])}</text>'
            f'<rect x="70" y="{y + 4}" width="{width:.0f}" height="16" fill="#b5452b"/>'
            f'<text x="{76 + width:.0f}" y="{y + 16}">{html.escape(str(row[measure]))}</text>'
        )
    height = 24 * len(ranked) + 8
    return f'<svg role="img" width="560" height="{height}" font-size="13">{"".join(bars)}</svg>'


def render_report(summary: dict[str, Any], rows: list[dict[str, Any]], measures: list[str]) -> str:
    """The whole page: headline figures, the chart, and the published table."""
    head = "".join(f"<th>{html.escape(LABELS.get(m, m))}</th>" for m in measures)
    body = "".join(
        "<tr><td>"
        + html.escape(str(r["area"]))
        + "</td>"
        + "".join(f"<td>{html.escape(str(r[m]))}</td>" for m in measures)
        + "</tr>"
        for r in rows
    )
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in summary.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>placelink hot-spots</title>
<style>{_STYLE}</style></head><body>
<h1>Where need concentrates: people known to several agencies, by area</h1>
<p class="note">Published under the policy's disclosure control: 0 stays 0, counts of 1-7 are
shown as *, 8 and over are rounded to the nearest 5. An entity counts in the area of its most
recent record. No person-level data is shown or held here.</p>
<h2>Areas with most people known to 3 or more agencies</h2>
<p class="note">Areas whose figure is 0 or suppressed (*) are not drawn.</p>
{bar_chart(rows)}
<h2>All areas</h2>
<table><thead><tr><th>area</th>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>About this run</h2><ul>{facts}</ul>
</body></html>
"""
