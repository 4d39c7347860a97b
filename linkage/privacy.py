"""Differential privacy for hot-spot answers, where the policy asks for it (OpenDP).

A policy sets ``disclosure_control: {epsilon_per_query: E, epsilon_total: T}``. Each answered
query then costs E from the analyst's budget T under that policy (a ledger in the database; a
query that would overspend is refused), and every count is released through OpenDP's
discrete Laplace mechanism (``make_laplace`` on integers) with scale = L1 sensitivity / E,
before the disclosure rule (so noisy counts are still suppressed and rounded).

Sensitivity, the most one person's entity can change the vector of counts: a table counts an
entity at most once per measure (in one area), so L1 = measures (the total row is summed from
the noisy cells: post-processing, no further cost); a trend counts it once per month of the
window, L1 = months; the co-occurrence matrix counts it in at most a(a+1)/2 cells of a
agencies. Both keys are read here from the policy document (the policy model of
:mod:`policies.model` carries min_cell and rounding; when it carries the epsilons too, read them
from there instead). Setting one key without the other does not load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp
from numpy.typing import NDArray

from keys.errors import PolicyError
from policies.model import Policy

dp.enable_features("contrib")
MECHANISM = "discrete Laplace (OpenDP make_laplace)"


@dataclass(frozen=True)
class PrivacyBudget:
    """The policy's differential-privacy terms."""

    epsilon_per_query: float
    epsilon_total: float


def _epsilon(raw: Any, key: str, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value) or value <= 0:
        raise PolicyError(
            f"{where}: disclosure_control.{key} must be a positive number",
            fix=f"write e.g. `{key}: 0.5`, or leave both epsilon keys out",
        )
    return value


def privacy_budget(policy: Policy) -> PrivacyBudget | None:
    """The policy's budget, or None where it asks for no noise."""
    raw = policy.document.get("disclosure_control") or {}
    where = f"policy {policy.policy_id!r}"
    per_query, total = raw.get("epsilon_per_query"), raw.get("epsilon_total")
    if per_query is None and total is None:
        return None
    if per_query is None or total is None:
        raise PolicyError(
            f"{where}: disclosure_control sets one of epsilon_per_query and epsilon_total",
            fix="set both (a cost per query and a total per analyst), or neither",
        )
    budget = PrivacyBudget(
        _epsilon(per_query, "epsilon_per_query", where), _epsilon(total, "epsilon_total", where)
    )
    if budget.epsilon_per_query > budget.epsilon_total:
        raise PolicyError(
            f"{where}: disclosure_control.epsilon_per_query exceeds epsilon_total",
            fix="make the total at least one query's cost",
        )
    return budget


def noise_scale(sensitivity: int, epsilon: float) -> float:
    return sensitivity / epsilon


def add_noise(counts: NDArray[np.int64], *, sensitivity: int, epsilon: float) -> NDArray[np.int64]:
    """Counts with discrete Laplace noise calibrated to (sensitivity, epsilon), clamped at 0.

    OpenDP checks the privacy map: the measurement's epsilon at this sensitivity must not
    exceed what the query pays for."""
    if sensitivity < 1 or not counts.size:
        return counts.copy()
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    measurement = dp.m.make_laplace(*space, scale=noise_scale(sensitivity, epsilon))
    if measurement.map(sensitivity) > epsilon * (1 + 1e-9):  # type: ignore[no-untyped-call]
        raise PolicyError(
            "the noise mechanism would spend more than the query's epsilon",
            fix="report this as a bug; nothing was released",
        )
    noisy = np.asarray(measurement([int(c) for c in counts.ravel()]), dtype=np.int64)
    return np.maximum(noisy, 0).reshape(counts.shape)
