"""Fellegi-Sunter parameters estimated from the data without labels (EM), and the weights,
probabilities and threshold they give.

The candidate pairs are a mixture of matches (share ``lambda``) and non-matches. For each field
f and agreement level l, m[f][l] = P(level l | match) and u[f][l] = P(level l | non-match); a
pair's weight is the sum of log2(m/u) over its present fields, where a dependent group
(address and postcode: one household shares both) counts once, as its strongest member.

Estimation (Winkler's EM, as in recordlinkage's ECM classifier but over graded levels):

1. Count the distinct level patterns of the candidate pairs (at most 5^7 for the default
   schema, so the EM costs nothing next to the comparisons, however many pairs there are).
2. E-step: each pattern's posterior probability of being a match under the current m, u, lambda.
3. M-step: m, u and lambda as posterior-weighted level frequencies, each smoothed toward the
   priors of :data:`linkage.classify.DEFAULT_MODELS` by ``prior_strength`` pseudo-pairs (a MAP
   estimate). With few candidate pairs the priors dominate; with many, the data. Every m is
   kept at or above :data:`M_FLOOR`, so that no single field can veto a match.
4. Stop when no parameter moves by more than ``tolerance``, or after ``max_iterations``.
5. Check the fit is plausible (:func:`is_plausible`); if not, fall back to the priors.

The default threshold is the weight at which a pair's posterior match probability is 1/2:
log2((1 - lambda) / lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from linkage.classify import DEFAULT_MODELS, DEPENDENT_GROUPS, FieldModel
from linkage.compare import MISSING, Levels

Floats = npt.NDArray[np.float64]
PRIOR_MATCH_SHARE = 0.05
_FLOOR = 1e-9  # no level is ever estimated impossible: log2(m/u) stays finite
# At least 1% of true matches fall in any level of any field (typos, moves, name changes, a
# clerk's slip): one badly disagreeing field weighs against a match, it cannot veto it alone.
M_FLOOR = 0.01
# Matches are the minority among candidate pairs; without this bound EM may swap the classes.
MAX_MATCH_SHARE = 0.5


@dataclass(frozen=True)
class FittedModel:
    """m/u per field and level, the match share among candidates, and how the fit went."""

    fields: tuple[str, ...]
    models: tuple[FieldModel, ...]
    match_share: float
    iterations: int = 0
    converged: bool = True
    estimated: bool = False  # False: the priors (no pairs, or an estimate that failed a check)

    def field_weights(self) -> list[Floats]:
        return [model.weights() for model in self.models]

    def default_threshold(self) -> float:
        share = min(max(self.match_share, 1e-12), 1 - 1e-12)
        return float(np.log2((1 - share) / share))

    def contributions(self, levels: Levels) -> Floats:
        """Each field's log2(m/u) per pair (pairs, fields); 0 where the field is missing."""
        out = np.zeros(levels.shape, dtype=np.float64)
        for index, weights in enumerate(self.field_weights()):
            column = levels[:, index]
            present = column != MISSING
            out[present, index] = weights[column[present]]
        return out

    def weights(self, levels: Levels) -> Floats:
        """Total match weight of each pair, dependent groups counted once."""
        if len(levels) == 0:
            return np.zeros(0)
        codes, patterns = pattern_codes(levels, self)
        return pattern_weights(self, patterns)[codes]

    def probability(self, weights: Floats) -> Floats:
        """Posterior match probability of pairs with these weights."""
        share = min(max(self.match_share, 1e-12), 1 - 1e-12)
        odds = np.exp2(np.clip(weights, -1000, 1000)) * (share / (1 - share))
        return np.asarray(odds / (1 + odds), dtype=np.float64)


def model_to_json(model: FittedModel) -> dict[str, object]:
    """The model as plain JSON (kept with a link run, for the next incremental run)."""
    return {
        "fields": list(model.fields),
        "match_share": model.match_share,
        "levels": [
            {"thresholds": list(m.thresholds), "m": list(m.m), "u": list(m.u)} for m in model.models
        ],
        "iterations": model.iterations,
        "converged": model.converged,
        "estimated": model.estimated,
    }


def model_from_json(document: dict[str, Any]) -> FittedModel:
    """The inverse of :func:`model_to_json`."""
    models = tuple(
        FieldModel(tuple(level["thresholds"]), tuple(level["m"]), tuple(level["u"]))
        for level in document["levels"]
    )
    return FittedModel(
        tuple(document["fields"]),
        models,
        float(document["match_share"]),
        int(document["iterations"]),
        bool(document["converged"]),
        bool(document["estimated"]),
    )


def prior_model(fields: tuple[str, ...]) -> FittedModel:
    """The priors as a model: what the engine uses before (or instead of) estimation."""
    return FittedModel(fields, tuple(DEFAULT_MODELS[f] for f in fields), PRIOR_MATCH_SHARE)


def _bases(model: FittedModel) -> npt.NDArray[np.int64]:
    sizes = np.array([len(m.m) + 1 for m in model.models], dtype=np.int64)  # + MISSING
    return np.concatenate([[1], np.cumprod(sizes)[:-1]]).astype(np.int64)


def pattern_codes(levels: Levels, model: FittedModel) -> tuple[npt.NDArray[np.int64], Levels]:
    """Each pair's pattern index into the distinct patterns (patterns, fields).

    Codes index a table over every possible pattern (a few hundred thousand at most), so the
    distinct patterns come from a bincount, not a sort of all pairs.
    """
    bases = _bases(model)
    sizes = [len(m.m) + 1 for m in model.models]
    codes = np.zeros(len(levels), dtype=np.int64)
    for index, base in enumerate(bases.tolist()):
        codes += (levels[:, index].astype(np.int64) + 1) * base
    seen = np.flatnonzero(np.bincount(codes, minlength=int(np.prod(sizes))))
    lookup = np.zeros(int(np.prod(sizes)), dtype=np.int64)
    lookup[seen] = np.arange(len(seen))
    patterns = np.empty((len(seen), len(bases)), dtype=np.int8)
    for index, base in enumerate(bases.tolist()):
        patterns[:, index] = (seen // base) % sizes[index] - 1
    return lookup[codes], patterns


def pattern_weights(model: FittedModel, patterns: Levels) -> Floats:
    """Total weight of each pattern: present fields summed, dependent groups counted once."""
    parts = model.contributions(patterns)
    total = parts.sum(axis=1)
    for group in DEPENDENT_GROUPS:
        columns = [model.fields.index(n) for n in group if n in model.fields]
        if len(columns) < 2:
            continue
        present = patterns[:, columns] != MISSING
        stacked = np.where(present, parts[:, columns], -np.inf)
        strongest = np.where(present.any(axis=1), stacked.max(axis=1), 0.0)
        total = total - parts[:, columns].sum(axis=1) + strongest
    return np.asarray(total, dtype=np.float64)


def _level_shares(
    patterns: Levels, weight: Floats, prior: FieldModel, prior_m: bool, column: int, strength: float
) -> tuple[float, ...]:
    size = len(prior.m)
    present = patterns[:, column] != MISSING
    mass = np.bincount(patterns[present, column], weights=weight[present], minlength=size)
    base = np.array(prior.m if prior_m else prior.u)
    shares = (mass + strength * base) / (mass.sum() + strength)
    shares = np.maximum(shares, M_FLOOR if prior_m else _FLOOR)
    return tuple(float(x) for x in shares / shares.sum())


def _m_step(
    patterns: Levels,
    counts: Floats,
    posterior: Floats,
    fields: tuple[str, ...],
    strength: float,
    fixed_u: FittedModel | None,
) -> FittedModel:
    matched, unmatched = counts * posterior, counts * (1 - posterior)
    models = []
    for column, name in enumerate(fields):
        prior = DEFAULT_MODELS[name]
        m = _level_shares(patterns, matched, prior, True, column, strength)
        if fixed_u is not None:
            u = fixed_u.models[column].u
        else:
            u = _level_shares(patterns, unmatched, prior, False, column, strength)
        models.append(FieldModel(prior.thresholds, m, u))
    share = (matched.sum() + strength * PRIOR_MATCH_SHARE) / (counts.sum() + strength)
    return FittedModel(fields, tuple(models), float(min(share, MAX_MATCH_SHARE)))


def _distance(a: FittedModel, b: FittedModel) -> float:
    moves = [abs(a.match_share - b.match_share)]
    for x, y in zip(a.models, b.models, strict=True):
        moves += [float(np.max(np.abs(np.subtract(x.m, y.m))))]
        moves += [float(np.max(np.abs(np.subtract(x.u, y.u))))]
    return max(moves)


def estimate_u(
    random_levels: Levels, fields: tuple[str, ...], *, prior_strength: float = 50.0
) -> FittedModel:
    """u from the levels of random record pairs (almost all non-matches), smoothed to priors."""
    model = prior_model(fields)
    if len(random_levels) == 0:
        return model
    codes, patterns = pattern_codes(random_levels, model)
    counts = np.bincount(codes, minlength=len(patterns)).astype(np.float64)
    return _m_step(patterns, counts, np.zeros(len(patterns)), fields, prior_strength, None)


def estimate_model(
    levels: Levels,
    fields: tuple[str, ...],
    *,
    fixed_u: FittedModel | None = None,
    prior_strength: float = 50.0,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> FittedModel:
    """m, u and the match share from the candidate pairs' levels, by EM (see the module);
    with ``fixed_u`` (from :func:`estimate_u`), only m and the match share are estimated."""
    model = prior_model(fields)
    if fixed_u is not None:
        model = FittedModel(fields, fixed_u.models, model.match_share)
    if len(levels) == 0:
        return model
    codes, patterns = pattern_codes(levels, model)
    counts = np.bincount(codes, minlength=len(patterns)).astype(np.float64)
    for iteration in range(1, max_iterations + 1):
        posterior = model.probability(pattern_weights(model, patterns))
        fitted = _m_step(patterns, counts, posterior, fields, prior_strength, fixed_u)
        moved = _distance(model, fitted)
        model = FittedModel(fields, fitted.models, fitted.match_share, iteration, False, True)
        if moved < tolerance:
            model = FittedModel(fields, model.models, model.match_share, iteration, True, True)
            break
    return model if is_plausible(model) else prior_model(fields)


def is_plausible(model: FittedModel) -> bool:
    """Each field's best level is evidence for a match and its worst level against one.

    EM can settle on another split of the candidates (say, people sharing a first name); such
    a fit fails this check and the engine falls back to the priors instead of linking on it.
    """
    for weights in model.field_weights():
        if not weights[0] > 0 > weights[-1]:
            return False
    return model.match_share < MAX_MATCH_SHARE
