"""Fellegi-Sunter parameters estimated from the data without labels (EM), and the weights,
probabilities and threshold they give.

The candidate pairs are a mixture of matches (share ``lambda``) and non-matches. For each field
f and agreement level l, m[f][l] = P(level l | match) and u[f][l] = P(level l | non-match); a
pair's weight is the sum of log2(m/u) over its present fields, except for the pairs of fields
in :data:`linkage.classify.JOINT_GROUPS` (address and postcode: one household shares both, a
move changes both; given and family name: they are mistyped, swapped and left out together,
and blocking on both makes a non-match that shares one more likely to share the other). Where
both fields of such a pair are present, the pair counts once, by the joint m/u of its two
levels (:class:`GroupModel`), bounded by its members' own weights (:func:`_joint_bounds`), so
that whether agreeing on both is two pieces of evidence or one is learnt from the data.
Without a fitted joint table (the priors), address and postcode count as their strongest
present member and the names add up. Two names that both disagree at their worst levels where
the date of birth and the postcode agree may be swapped, which no comparison can check; they
count nothing there (:func:`_maybe_swapped`).

Estimation (Winkler's EM, as in recordlinkage's ECM classifier but over graded levels):

1. Count the distinct level patterns of the candidate pairs (at most 5^7 for the default
   schema, so the EM costs nothing next to the comparisons, however many pairs there are).
2. E-step: each pattern's posterior probability of being a match under the current m, u, lambda.
3. M-step: m, u and lambda as posterior-weighted level frequencies, each smoothed toward the
   priors of :data:`linkage.classify.DEFAULT_MODELS` by ``prior_strength`` pseudo-pairs (a MAP
   estimate); a group's joint m and u likewise, shrunk by :data:`JOINT_SHRINKAGE` toward the
   product of its members' fitted m (or u), so that a pair of levels never seen keeps the
   members' independent evidence. With few candidate pairs the priors dominate; with many,
   the data. Every m is kept at or above :data:`M_FLOOR`, so that no single field can veto a match.
4. Stop when no parameter moves by more than ``tolerance``, or after ``max_iterations``.
5. Check the fit is plausible (:func:`is_plausible`); if not, fall back to the priors.

The default threshold is the weight at which a pair's posterior match probability is 1/2:
log2((1 - lambda) / lambda).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from linkage.classify import DEFAULT_MODELS, DEPENDENT_GROUPS, JOINT_GROUPS, FieldModel
from linkage.compare import MISSING, Levels

Floats = npt.NDArray[np.float64]
PRIOR_MATCH_SHARE = 0.05
_FLOOR = 1e-9  # no level is ever estimated impossible: log2(m/u) stays finite
# At least 1% of true matches fall in any level of any field (typos, moves, name changes, a
# clerk's slip): one badly disagreeing field weighs against a match, it cannot veto it alone.
M_FLOOR = 0.01
# Share of a group's joint m (and u) taken from the product of its members' marginals.
JOINT_SHRINKAGE = 0.05
# Matches are the minority among candidate pairs; without this bound EM may swap the classes.
MAX_MATCH_SHARE = 0.5
# Names that may be swapped (given for family), and the fields whose agreement makes a double
# name disagreement look like a swap (see _maybe_swapped).
SWAPPABLE_NAMES = ("given_name", "family_name")
SWAP_WITNESSES = ("date_of_birth", "postcode")


@dataclass(frozen=True)
class GroupModel:
    """Joint m/u of a dependent group's two fields, indexed [level of first, level of second]."""

    fields: tuple[str, str]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]

    def weights(self) -> Floats:
        return np.asarray(np.log2(np.array(self.m) / np.array(self.u)), dtype=np.float64)


@dataclass(frozen=True)
class FittedModel:
    """m/u per field and level, the match share among candidates, and how the fit went."""

    fields: tuple[str, ...]
    models: tuple[FieldModel, ...]
    match_share: float
    iterations: int = 0
    converged: bool = True
    estimated: bool = False  # False: the priors (no pairs, or an estimate that failed a check)
    groups: tuple[GroupModel, ...] = ()  # joint m/u of dependent groups; () with the priors
    salted: tuple[str, ...] = ()  # fields salted with the date of birth (see _salt_unsure)

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
        "groups": [
            {"fields": list(g.fields), "m": [list(r) for r in g.m], "u": [list(r) for r in g.u]}
            for g in model.groups
        ],
        "salted": list(model.salted),
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
        tuple(_group_from_json(g) for g in document.get("groups", [])),
        tuple(str(name) for name in document.get("salted", [])),
    )


def _group_from_json(document: dict[str, Any]) -> GroupModel:
    first, second = document["fields"]
    return GroupModel(
        (str(first), str(second)),
        tuple(tuple(float(x) for x in row) for row in document["m"]),
        tuple(tuple(float(x) for x in row) for row in document["u"]),
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


def pattern_weights(model: FittedModel, patterns: Levels, *, bounded: bool = True) -> Floats:
    """Total weight of each pattern: present fields summed, except that a group with a fitted
    joint table counts by it where both its fields are present (:func:`_joint_weight`; the EM
    itself reads the joint tables unbounded), and a dependent group without one counts once,
    as its strongest present member. Salted fields follow :func:`_salt_unsure`; names that
    may be swapped count nothing (:func:`_maybe_swapped`)."""
    patterns = swap_masked(model, patterns)
    parts = model.contributions(patterns)
    unsure = _salt_unsure(model, patterns)
    kept = parts.copy()
    for name in model.salted:
        if name in model.fields:
            column = model.fields.index(name)
            kept[:, column] = np.where(unsure, np.maximum(parts[:, column], 0.0), parts[:, column])
    total = kept.sum(axis=1)
    joint = {g.fields: g for g in model.groups}
    for group in JOINT_GROUPS:
        if not all(n in model.fields for n in group):
            continue
        columns = [model.fields.index(n) for n in group]
        present = patterns[:, columns] != MISSING
        if group in joint:
            grouped = _joint_weight(
                joint[group], parts[:, columns], patterns[:, columns], present, bounded
            )
        elif group in DEPENDENT_GROUPS:
            grouped = _strongest(parts[:, columns], present)
        else:
            continue
        if set(group) <= set(model.salted):
            lifted = unsure & (parts[:, columns] < 0).any(axis=1)
            grouped = np.where(lifted, np.maximum(grouped, kept[:, columns].sum(axis=1)), grouped)
        total = total - kept[:, columns].sum(axis=1) + grouped
    return np.asarray(total, dtype=np.float64)


def _maybe_swapped(model: FittedModel, patterns: Levels) -> npt.NDArray[np.bool_]:
    """Patterns whose two names both disagree at their worst levels while the date of birth
    and the postcode agree at their top levels: the names may be swapped.

    No comparison can check a swap: each field has its own key, so a given name's filters (and
    salted copies) are unrelated to a family name's even where the values are equal. Counted as
    two disagreements, a swap weighs a match with an equal date of birth and postcode down to
    the threshold (FEBRL4 swaps the names of 211 of its 5,000 duplicates; docs/attacks.md);
    two people who share a date of birth and a postcode but neither name are rare. There the
    names count as missing instead: no evidence either way. The EM still learns the names'
    m and u from these pairs as they are (only the weights leave them out)."""
    fields = (*SWAPPABLE_NAMES, *SWAP_WITNESSES)
    if not all(name in model.fields for name in fields):
        return np.zeros(len(patterns), dtype=bool)
    swapped = np.ones(len(patterns), dtype=bool)
    for name in SWAP_WITNESSES:
        swapped &= patterns[:, model.fields.index(name)] == 0
    for name in SWAPPABLE_NAMES:
        column = model.fields.index(name)
        swapped &= patterns[:, column] == len(model.models[column].m) - 1
    return swapped


def swap_masked(model: FittedModel, patterns: Levels) -> Levels:
    """The patterns with both names missing where :func:`_maybe_swapped` holds (what the
    weights read; :mod:`linkage.explain` shows the names' weights so)."""
    swapped = _maybe_swapped(model, patterns)
    if not swapped.any():
        return patterns
    masked = patterns.copy()
    for name in SWAPPABLE_NAMES:
        masked[swapped, model.fields.index(name)] = MISSING
    return masked


def _salt_unsure(model: FittedModel, patterns: Levels) -> npt.NDArray[np.bool_]:
    """Pairs whose salted fields' disagreements count 0: the dates of birth do not agree.

    A field salted with the date of birth (schema ``salt``) gives unrelated filters for equal
    values whenever the two dates differ, so where the date of birth is missing or below its
    top level a salted field's (or an all-salted group's) negative evidence says nothing about
    the person and is left out; agreements count as usual.
    """
    if not model.salted or "date_of_birth" not in model.fields:
        return np.zeros(len(patterns), dtype=bool)
    return np.asarray(patterns[:, model.fields.index("date_of_birth")] != 0)


def _salt_masked(model: FittedModel, patterns: Levels) -> Levels:
    """The patterns the M-step learns m and u from: a salted field counts as missing where
    :func:`_salt_unsure` holds, so its m and u are those among pairs whose dates of birth
    agree (matches whose dates differ would otherwise teach that matches often disagree on
    names, and a name disagreement would weigh little where the dates do agree)."""
    unsure = _salt_unsure(model, patterns)
    if not unsure.any():
        return patterns
    masked = patterns.copy()
    for name in model.salted:
        if name in model.fields:
            masked[unsure, model.fields.index(name)] = MISSING
    return masked


def _strongest(parts: Floats, present: npt.NDArray[np.bool_]) -> Floats:
    """The strongest present member's contribution per row (0 where none is present)."""
    stacked = np.where(present, parts, -np.inf)
    return np.asarray(np.where(present.any(axis=1), stacked.max(axis=1), 0.0), dtype=np.float64)


def _joint_weight(
    group: GroupModel,
    parts: Floats,
    levels: Levels,
    present: npt.NDArray[np.bool_],
    bounded: bool,
) -> Floats:
    """A group's contribution: its members' sum where one is missing; where both are present,
    the joint log2(m/u), bounded by the members' own weights (:func:`_joint_bounds`)."""
    out = np.where(present, parts, 0.0).sum(axis=1)
    both = present.all(axis=1)
    joint = group.weights()[levels[both, 0], levels[both, 1]]
    if bounded:
        low, high = _joint_bounds(parts[both])
        joint = np.clip(joint, low, high)
    out[both] = joint
    return np.asarray(out, dtype=np.float64)


def _joint_bounds(members: Floats) -> tuple[Floats, Floats]:
    """Bounds on a joint weight from its two members' weights (rows, 2).

    Both agree: between the stronger member and their sum. Agreeing on both says at least
    what one says, and no more than two independent agreements; a larger joint estimate comes
    from how blocking picks its candidates (non-matches that share one name are proposed
    mostly for other reasons, so sharing both looks rarer among them than it is among people
    in one household). Otherwise: no lower than the more negative member. EM learns what
    matches disagree on from pairs it already calls matches, so it overrates how rarely a match
    disagrees twice; one disagreement counts in full.
    """
    agree = (members > 0).all(axis=1)
    low = np.where(agree, members.max(axis=1), members.min(axis=1))
    high = np.where(agree, members.sum(axis=1), np.inf)
    return low, high


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


def _joint_shares(
    patterns: Levels, weight: Floats, columns: tuple[int, int], marginals: tuple[Floats, Floats]
) -> tuple[tuple[float, ...], ...]:
    """A group's joint level shares among pairs where both fields are present, shrunk toward
    the product of the members' marginal shares (:data:`JOINT_SHRINKAGE`)."""
    sizes = (len(marginals[0]), len(marginals[1]))
    both = (patterns[:, columns[0]] != MISSING) & (patterns[:, columns[1]] != MISSING)
    cells = patterns[both, columns[0]].astype(np.int64) * sizes[1] + patterns[both, columns[1]]
    mass = np.bincount(cells, weights=weight[both], minlength=sizes[0] * sizes[1])
    independent = np.outer(marginals[0], marginals[1]).ravel()
    observed = mass / mass.sum() if mass.sum() > 0 else independent
    shares = (1 - JOINT_SHRINKAGE) * observed + JOINT_SHRINKAGE * independent
    shares = np.maximum(shares, _FLOOR)
    table = (shares / shares.sum()).reshape(sizes)
    return tuple(tuple(float(x) for x in row) for row in table)


def _fit_groups(
    patterns: Levels,
    matched: Floats,
    unmatched: Floats,
    models: list[FieldModel],
    fields: tuple[str, ...],
    fixed_u: FittedModel | None,
) -> tuple[GroupModel, ...]:
    """Joint m/u of each of :data:`JOINT_GROUPS` whose two fields are both modelled."""
    groups = []
    fixed = {g.fields: g for g in fixed_u.groups} if fixed_u is not None else {}
    for pair in JOINT_GROUPS:
        if not all(n in fields for n in pair):
            continue
        columns = (fields.index(pair[0]), fields.index(pair[1]))
        first, second = models[columns[0]], models[columns[1]]
        m = _joint_shares(patterns, matched, columns, (np.array(first.m), np.array(second.m)))
        if pair in fixed:
            u = fixed[pair].u
        else:
            u = _joint_shares(patterns, unmatched, columns, (np.array(first.u), np.array(second.u)))
        groups.append(GroupModel(pair, m, u))
    return tuple(groups)


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
    groups = _fit_groups(patterns, matched, unmatched, models, fields, fixed_u)
    share = (matched.sum() + strength * PRIOR_MATCH_SHARE) / (counts.sum() + strength)
    return FittedModel(
        fields, tuple(models), float(min(share, MAX_MATCH_SHARE)), groups=tuple(groups)
    )


def _distance(a: FittedModel, b: FittedModel) -> float:
    moves = [abs(a.match_share - b.match_share)]
    for x, y in zip(a.models, b.models, strict=True):
        moves += [float(np.max(np.abs(np.subtract(x.m, y.m))))]
        moves += [float(np.max(np.abs(np.subtract(x.u, y.u))))]
    for g, h in zip(a.groups, b.groups, strict=False):
        moves += [float(np.max(np.abs(np.subtract(g.m, h.m))))]
        moves += [float(np.max(np.abs(np.subtract(g.u, h.u))))]
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
    max_iterations: int = 1000,
    tolerance: float = 1e-7,
    salted: tuple[str, ...] = (),
) -> FittedModel:
    """m, u and the match share from the candidate pairs' levels, by EM (see the module);
    with ``fixed_u`` (from :func:`estimate_u`), only m and the match share are estimated;
    ``salted``: the fields salted with the date of birth (:func:`_salt_unsure`)."""
    model = replace(prior_model(fields), salted=salted)
    if fixed_u is not None:
        model = replace(model, models=fixed_u.models, groups=fixed_u.groups)
    if len(levels) == 0:
        return model
    codes, patterns = pattern_codes(levels, model)
    counts = np.bincount(codes, minlength=len(patterns)).astype(np.float64)
    learned = _salt_masked(model, patterns)
    for iteration in range(1, max_iterations + 1):
        posterior = model.probability(pattern_weights(model, patterns, bounded=False))
        fitted = _m_step(learned, counts, posterior, fields, prior_strength, fixed_u)
        moved = _distance(model, fitted)
        model = replace(fitted, iterations=iteration, converged=False, estimated=True)
        model = replace(model, salted=salted)
        if moved < tolerance:
            model = replace(model, converged=True)
            break
    return model if is_plausible(model) else replace(prior_model(fields), salted=salted)


def is_plausible(model: FittedModel) -> bool:
    """Each field's best level is evidence for a match and its worst level against one.

    EM can settle on another split of the candidates (say, people sharing a first name); such
    a fit fails this check and the engine falls back to the priors instead of linking on it.
    """
    for weights in model.field_weights():
        if not weights[0] > 0 > weights[-1]:
            return False
    return model.match_share < MAX_MATCH_SHARE
