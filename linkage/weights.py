"""The match-weight distribution of a run, and the threshold report drawn from it.

The histogram counts candidate pairs per weight bin and splits each bin into expected matches
and non-matches by the model's posterior match probability (the EM's own view of where the two
populations lie). :func:`write_weight_report` writes a self-contained page (inline SVG, no
network) that shows the two populations, where they separate, the chosen threshold, and the
per-field m/u behind the weights, so the people who set the threshold can see why.

Only aggregates appear: bin counts and model parameters, never a pair or a record.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from linkage.fellegi_sunter import FittedModel

MAX_BINS = 60
_W, _H, _PAD = 720, 300, 40


@dataclass(frozen=True)
class WeightHistogram:
    """Bins [edges[k], edges[k+1]) of match weight; expected matches and non-matches per bin."""

    edges: tuple[float, ...]
    matches: tuple[float, ...]
    non_matches: tuple[float, ...]
    threshold: float

    @property
    def pairs(self) -> int:
        return round(sum(self.matches) + sum(self.non_matches))


def weight_histogram(
    weights: npt.NDArray[np.float64], probability: npt.NDArray[np.float64], threshold: float
) -> WeightHistogram:
    """Bins of width 1 (wider when the range is large) that include the threshold."""
    if len(weights) == 0:
        return WeightHistogram((), (), (), threshold)
    low = math.floor(min(float(weights.min()), threshold))
    high = math.ceil(max(float(weights.max()), threshold)) + 1
    width = max(1, math.ceil((high - low) / MAX_BINS))
    edges = np.arange(low, high + width, width, dtype=np.float64)
    matches, _ = np.histogram(weights, bins=edges, weights=probability)
    everything, _ = np.histogram(weights, bins=edges)
    return WeightHistogram(
        tuple(float(e) for e in edges),
        tuple(float(m) for m in matches),
        tuple(float(n) for n in everything - matches),
        float(threshold),
    )


def _scale(count: float, peak: float) -> float:
    """Bar height on a log scale, so that a few thousand matches show beside millions."""
    return (_H - 2 * _PAD) * math.log10(1 + count) / math.log10(1 + peak) if peak else 0.0


def weight_chart_svg(histogram: WeightHistogram) -> str:
    """Stacked bars (non-matches grey, matches red) and a line at the threshold."""
    if not histogram.matches:
        return '<svg role="img" width="720" height="40"><text x="10" y="25">no pairs</text></svg>'
    lo, hi = histogram.edges[0], histogram.edges[-1]

    def x(value: float) -> float:
        return _PAD + (_W - 2 * _PAD) * (value - lo) / (hi - lo)

    peak = max(m + n for m, n in zip(histogram.matches, histogram.non_matches, strict=True))
    parts = []
    for k, (m, n) in enumerate(zip(histogram.matches, histogram.non_matches, strict=True)):
        left, right = x(histogram.edges[k]), x(histogram.edges[k + 1])
        total, match = _scale(m + n, peak), _scale(m + n, peak) * (m / (m + n) if m + n else 0)
        base = _H - _PAD
        parts.append(
            f'<rect x="{left:.1f}" y="{base - total:.1f}" width="{right - left - 1:.1f}" '
            f'height="{total - match:.1f}" fill="#9a9a9a"/>'
            f'<rect x="{left:.1f}" y="{base - match:.1f}" width="{right - left - 1:.1f}" '
            f'height="{match:.1f}" fill="#b5452b"/>'
        )
    t = x(histogram.threshold)
    parts.append(
        f'<line x1="{t:.1f}" x2="{t:.1f}" y1="{_PAD - 10}" y2="{_H - _PAD}" stroke="#1b1b1b" '
        f'stroke-dasharray="4 3"/><text x="{t + 4:.1f}" y="{_PAD - 12}">threshold '
        f"{histogram.threshold:.2f}</text>"
    )
    for value in np.linspace(lo, hi, 7):
        parts.append(f'<text x="{x(value):.1f}" y="{_H - _PAD + 16}">{value:.0f}</text>')
    parts.append(
        f'<text x="{_W / 2 - 120:.0f}" y="{_H - 4}">match weight (log2 m/u), pairs on a log '
        "scale</text>"
    )
    return f'<svg role="img" width="{_W}" height="{_H}" font-size="12">{"".join(parts)}</svg>'


def _model_table(model: FittedModel) -> str:
    rows = []
    for name, field_model in zip(model.fields, model.models, strict=True):
        labels = [f">= {t:g}" for t in field_model.thresholds] + ["else"]
        for label, m, u, w in zip(
            labels, field_model.m, field_model.u, field_model.weights(), strict=True
        ):
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(label)}</td>"
                f"<td>{m:.4f}</td><td>{u:.6f}</td><td>{w:+.2f}</td></tr>"
            )
    return (
        "<table><thead><tr><th>field</th><th>similarity</th><th>m</th><th>u</th>"
        f"<th>weight</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def write_weight_report(
    folder: Path, histogram: WeightHistogram, model: FittedModel, facts: dict[str, object]
) -> dict[str, Path]:
    """Write weights.svg and report.html into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    svg = weight_chart_svg(histogram)
    items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in facts.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>placelink match weights</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.2rem .5rem}}</style>
</head><body><h1>Where matches and non-matches separate</h1>
<p>Candidate pairs by match weight. Red: expected matches, grey: expected non-matches (the
model's posterior probability per pair, summed per bin). Pairs right of the dashed line are
links; clustering may still refuse a link that would join two different people.</p>
{svg}<h2>The run</h2><ul>{items}</ul>
<h2>The model (estimated by EM, match share {model.match_share:.5f})</h2>
{_model_table(model)}</body></html>
"""
    paths = {"chart": folder / "weights.svg", "report": folder / "report.html"}
    paths["chart"].write_text(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    paths["report"].write_text(page, encoding="utf-8")
    return paths
