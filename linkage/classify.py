"""Fellegi-Sunter match weights from field similarities.

Each field's similarity falls into an agreement level; each level has a probability m under a
match and u under a non-match, and contributes log2(m/u) to the pair's weight. A missing field
contributes 0. The parameters below are priors chosen for UK administrative data (u from value
frequencies: about 1 in 100 people share a given name, 1 in 5,000 a date of birth; m from
typical error rates). The engine estimates m and u from the data without labels
(:mod:`linkage.fellegi_sunter`) and uses these as the EM's starting point and priors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FieldModel:
    """Agreement-level thresholds (descending) and m/u per level; the last level is 'else'."""

    thresholds: tuple[float, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]

    def weights(self) -> Floats:
        return np.asarray(np.log2(np.array(self.m) / np.array(self.u)), dtype=np.float64)

    def levels(self, similarity: Floats) -> npt.NDArray[np.int64]:
        level = np.full(similarity.shape, len(self.thresholds), dtype=np.int64)
        for index in reversed(range(len(self.thresholds))):
            level[similarity >= self.thresholds[index]] = index
        return level


_LEVELS = (0.95, 0.8, 0.65)
_NAME_LEVELS = (0.95, 0.88, 0.8, 0.7, 0.6)
# Address filters fill up with long addresses (a 40-character address sets about 70% of its
# 512 bits), so unrelated addresses already reach Dice 0.7-0.8: its levels sit higher and finer.
_ADDRESS_LEVELS = (0.97, 0.93, 0.89, 0.85, 0.8, 0.7)
DEFAULT_MODELS: dict[str, FieldModel] = {
    "given_name": FieldModel(
        _NAME_LEVELS,
        (0.86, 0.05, 0.04, 0.025, 0.01, 0.015),
        (0.01, 0.004, 0.01, 0.03, 0.08, 0.866),
    ),
    "family_name": FieldModel(
        _NAME_LEVELS,
        (0.84, 0.06, 0.04, 0.02, 0.015, 0.025),
        (0.005, 0.002, 0.006, 0.02, 0.07, 0.897),
    ),
    "date_of_birth": FieldModel(
        (0.95, 0.8, 0.68, 0.5),
        (0.955, 0.015, 0.02, 0.005, 0.005),
        (0.0003, 0.002, 0.02, 0.1, 0.8777),
    ),
    "sex": FieldModel((0.5,), (0.98, 0.02), (0.5, 0.5)),
    "postcode": FieldModel(_LEVELS, (0.9, 0.02, 0.02, 0.06), (0.01, 0.02, 0.06, 0.91)),
    "address": FieldModel(
        _ADDRESS_LEVELS,
        (0.8, 0.07, 0.04, 0.025, 0.02, 0.02, 0.025),
        (0.004, 0.004, 0.008, 0.015, 0.03, 0.1, 0.839),
    ),
    "nhs_number": FieldModel((0.5,), (0.995, 0.005), (0.000001, 0.999999)),
}
# Fields that agree or disagree together (one household shares both): with these priors, and
# with a fitted model that has no joint table for them, their evidence counts once, as the
# strongest contribution among the group's present fields.
DEPENDENT_GROUPS: tuple[tuple[str, ...], ...] = (("address", "postcode"),)
# Pairs of fields whose agreement levels the EM models jointly (linkage.fellegi_sunter): one
# household shares address and postcode; given and family names go together (blocking on both
# names makes a non-match that shares one name more likely to share the other, and both are
# mistyped, swapped or left out together).
JOINT_GROUPS: tuple[tuple[str, str], ...] = (("address", "postcode"), ("given_name", "family_name"))
DEFAULT_THRESHOLD = 11.0


def match_weights(
    similarity: dict[str, Floats], models: dict[str, FieldModel] | None = None
) -> tuple[Floats, dict[str, Floats]]:
    """Total weight of each pair and each field's contribution (0 where missing)."""
    models = models or DEFAULT_MODELS
    total: Floats | None = None
    parts: dict[str, Floats] = {}
    for name, values in similarity.items():
        model = models.get(name)
        if model is None:
            continue
        contribution = model.weights()[model.levels(np.nan_to_num(values, nan=-1.0))]
        contribution = np.where(np.isnan(values), 0.0, contribution)
        parts[name] = contribution
        total = contribution if total is None else total + contribution
    if total is None:
        total = np.zeros(len(next(iter(similarity.values()), [])))
    return total - _group_excess(parts, similarity), parts


def _group_excess(parts: dict[str, Floats], similarity: dict[str, Floats]) -> Floats | float:
    """What summing a dependent group adds beyond its strongest present member."""
    excess: Floats | float = 0.0
    for group in DEPENDENT_GROUPS:
        names = [n for n in group if n in parts]
        if len(names) < 2:
            continue
        stacked = np.stack([parts[n] for n in names])
        present = np.stack([~np.isnan(similarity[n]) for n in names])
        strongest = np.max(np.where(present, stacked, -np.inf), axis=0)
        strongest = np.where(present.any(axis=0), strongest, 0.0)
        excess = excess + stacked.sum(axis=0) - strongest
    return excess
