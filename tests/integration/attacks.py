"""Attack harness: what an honest-but-curious linkage service can learn from field-level filters.

The attacker holds every encoding of one field (say ``given_name``) from an agency's upload, the
public linkage schema (bits, hashes per token, n-gram size), and the strongest realistic side
knowledge: the true frequency of every value in the population the records were drawn from
(for given names, what national statistics publish, by birth year too). It does not hold the
linkage secret. An attack re-identifies a record when it names the record's true (normalised)
value; the harness reports the share of records re-identified.

The population (:func:`population`) is drawn from the synthetic town's name lists with Zipf
frequencies (real name frequencies are Zipf-like; the town itself draws names uniformly, which
would understate what a frequency attack learns). Records are a sample of the population.
People live in households (UK household sizes, one family name a household where the field is
the family name) at unit postcodes of about 40 residents (:func:`_postcodes`), so that names
salted with the postcode can be attacked with what an electoral register tells: the frequency
of every (name, postcode) pair.

Attacks:

- :func:`frequency_attack`: group identical filters (or, against noise, filters within a small
  Hamming distance of a group's first member), rank groups by size, rank population values by
  frequency, and align the two rankings one to one.
- :func:`pattern_mining_attack`: learn which bit positions each frequent n-gram sets, by mining
  bit patterns whose joint support matches the n-gram's known frequency (the n-grams' positions
  co-occur in every filter of a value that contains them), then name each filter by the
  population value whose learned n-grams best agree with the filter's.
- :func:`cell_frequency_attack` (against salted filters): the attacker sees which records
  share a salt (their unsalted date-of-birth or postcode filters are equal) and aligns group
  sizes with value frequencies inside each such cell; it counts only what it re-identifies
  beyond the same guesses made without the encodings (:func:`cell_prior`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.bloom import BloomEncoder
from gateway.hardening import SALT_SEPARATOR, filter_spec, transform
from gateway.normalise import normalise_family_name, normalise_given_name
from gateway.salted_positions import copy_filters, copy_keys
from gateway.tokenise import ngrams
from placelink import town_lists
from policies.linkage_schema import FieldSpec

Bits = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Population:
    """People of the population (value, date of birth, postcode) and each value's true
    frequency."""

    values: list[str]
    births: list[dt.date]
    frequency: Counter[str]
    postcodes: list[str]
    other_names: list[str]  # each person's other name (given for family, family for given)

    def salts(self, rows: Sequence[int], salt: str) -> list[str]:
        """Each person's salt as the gateway forms it (see gateway.hardening.salts_for)."""
        if salt == "birth_date":
            return [self.births[i].isoformat() for i in rows]
        if salt == "postcode":
            return [self.postcodes[i] for i in rows]
        if salt == "postcode_other_name":
            return [f"{self.postcodes[i]}{SALT_SEPARATOR}{self.other_names[i]}" for i in rows]
        return [f"{self.births[i].year:04d}" for i in rows]

    def cells(self, rows: Sequence[int], salt: str) -> list[str]:
        """What the attacker sees of each record's salt: records with equal unsalted date of
        birth or postcode filters share a cell (the other name is salted, so unseen)."""
        return self.salts(rows, "postcode" if salt == "postcode_other_name" else salt)

    def joint_frequency(self, salt: str) -> Counter[object]:
        """The frequency of (value, salt) pairs: what an attacker facing salted filters needs."""
        everyone = range(len(self.values))
        return Counter(zip(self.values, self.salts(everyone, salt), strict=True))


def population(field: str, people: int, seed: int, zipf: float = 1.0) -> Population:
    """``people`` people, their ``field`` values drawn from the town's lists with Zipf weights,
    and each one's other name (a given name for a family-name population, and the reverse)."""
    rng = np.random.default_rng(seed)
    values = _names(field, people, rng, zipf)
    days = rng.integers(0, (dt.date(2024, 12, 31) - dt.date(1930, 1, 1)).days, size=people)
    births = [dt.date(1930, 1, 1) + dt.timedelta(days=int(d)) for d in days]
    postcodes, households = _homes(values, shared=field == "family_name", seed=seed)
    return Population(
        values, births, Counter(values), postcodes, _other_names(field, households, seed, zipf)
    )


def _names(field: str, count: int, rng: np.random.Generator, zipf: float) -> list[str]:
    """``count`` normalised names of ``field`` drawn with Zipf weights."""
    if field == "given_name":
        raw = list(town_lists.MALE_NAMES) + list(town_lists.FEMALE_NAMES)
        normalise: Callable[[str], str | None] = normalise_given_name
    else:
        raw = list(town_lists.SURNAMES)
        normalise = normalise_family_name
    order = rng.permutation(len(raw))
    weights = 1.0 / np.arange(1, len(raw) + 1) ** zipf
    picks = rng.choice(len(raw), size=count, p=weights / weights.sum())
    return [normalise(raw[order[i]]) or "" for i in picks]


def _other_names(field: str, households: list[list[int]], seed: int, zipf: float) -> list[str]:
    """Each person's other name: for a family-name population, given names one a person; for
    a given-name population, family names one a household."""
    rng = np.random.default_rng(seed + 2_000)
    count = sum(len(h) for h in households)
    if field == "family_name":
        return _names("given_name", count, rng, zipf)
    shared = _names("family_name", len(households), rng, zipf)
    out = [""] * count
    for household, name in zip(households, shared, strict=True):
        for person in household:
            out[person] = name
    return out


# People per household, as shares of households (England and Wales, census 2021, rounded).
HOUSEHOLD_SIZES = {1: 0.30, 2: 0.34, 3: 0.16, 4: 0.13, 5: 0.05, 6: 0.02}
RESIDENTS_PER_POSTCODE = 40


def _households(people: list[int], rng: np.random.Generator) -> list[list[int]]:
    """``people`` cut, in order, into households of census-like sizes."""
    sizes = rng.choice(
        list(HOUSEHOLD_SIZES), size=len(people), p=list(HOUSEHOLD_SIZES.values())
    ).tolist()
    out, start = [], 0
    for size in sizes:
        if start >= len(people):
            break
        out.append(people[start : start + size])
        start += size
    return out


def _homes(values: list[str], *, shared: bool, seed: int) -> tuple[list[str], list[list[int]]]:
    """Each person's unit postcode, and the households: households at random postcodes of about
    :data:`RESIDENTS_PER_POSTCODE` people. With ``shared``, a household's members share their
    value (a family name), as most households do; else households are formed at random. Drawn
    from a generator of its own, so the values and dates of birth stay as they were."""
    rng = np.random.default_rng(seed + 1_000)
    people = list(range(len(values)))
    if shared:
        people.sort(key=values.__getitem__)
    else:
        people = rng.permutation(len(values)).tolist()
    units = max(1, len(values) // RESIDENTS_PER_POSTCODE)
    postcodes = [""] * len(values)
    households = _households(people, rng)
    for household in households:
        unit = int(rng.integers(units))
        code = f"SB{unit // 100 + 1} {unit // 10 % 10}{chr(65 + unit % 10)}X"
        for person in household:
            postcodes[person] = code
    return postcodes, households


def sample(pop: Population, records: int, seed: int) -> list[int]:
    """Indices of the people an agency's extract holds."""
    rng = np.random.default_rng(seed + 1)
    return sorted(rng.choice(len(pop.values), size=records, replace=False).tolist())


def unpack(filters: npt.NDArray[np.uint8]) -> Bits:
    return np.unpackbits(filters, axis=1, bitorder="big").astype(bool)


def _groups(bits: Bits, radius: int) -> npt.NDArray[np.int64]:
    """Group label per record: identical filters, or within ``radius`` bits of a group's seed."""
    if radius == 0:
        _, labels = np.unique(bits, axis=0, return_inverse=True)
        return np.asarray(labels, dtype=np.int64).reshape(len(bits))
    labels = np.full(len(bits), -1, dtype=np.int64)
    for row in range(len(bits)):
        if labels[row] >= 0:
            continue
        close = (np.count_nonzero(bits != bits[row], axis=1) <= radius) & (labels < 0)
        labels[close] = row
    return labels


def _ranked_groups(labels: npt.NDArray[np.int64]) -> list[int]:
    """Group labels, largest first, groups of equal size in a random order: nothing the
    attacker holds ranks them, and the records' order (here the population's, which also
    orders the population's equally frequent values) must not do it for the attacker."""
    groups, sizes = np.unique(labels, return_counts=True)
    shuffle = np.random.default_rng(0).permutation(len(groups))
    order = np.lexsort((shuffle, -sizes))
    return [int(label) for label in groups[order]]


def frequency_attack(bits: Bits, known: Counter[object], radius: int = 0) -> list[object | None]:
    """Guess per record: the k-th largest filter group is the k-th most frequent value."""
    labels = _groups(bits, radius)
    ranked_groups = _ranked_groups(labels)
    ranked_values = [value for value, _ in known.most_common()]
    guess = dict(zip(ranked_groups, ranked_values, strict=False))
    return [guess.get(label) for label in labels.tolist()]


def linked_copies_attack(copies: Sequence[Bits], known: Counter[object]) -> list[object | None]:
    """Against a value stored as several salted copies side by side (schema version 3): two
    records whose copy k is equal (not absent) hold one value, whatever k, so the attacker
    joins such records (connected components over every copy's equal filters) and aligns
    the components' sizes with the value frequencies, as :func:`frequency_attack` aligns
    one copy's groups."""
    labels = _components([_present_groups(bits) for bits in copies])
    ranked_groups = _ranked_groups(labels)
    ranked_values = [value for value, _ in known.most_common()]
    guess = dict(zip(ranked_groups, ranked_values, strict=False))
    return [guess.get(label) for label in labels.tolist()]


def _present_groups(bits: Bits) -> npt.NDArray[np.int64]:
    """:func:`_groups` of identical filters, each absent (all-zero) copy a group of its own."""
    labels = _groups(bits, 0)
    absent = ~bits.any(axis=1)
    labels[absent] = labels.max(initial=0) + 1 + np.arange(int(absent.sum()))
    return labels


def _components(groupings: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    """Connected components of the records, two records joined where any grouping puts them
    in one group (union-find)."""
    parent = list(range(len(groupings[0])))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    for labels in groupings:
        first: dict[int, int] = {}
        for row, label in enumerate(labels.tolist()):
            seen = first.setdefault(label, row)
            parent[root(row)] = root(seen)
    return np.array([root(row) for row in range(len(parent))], dtype=np.int64)


def linked_copies_rate(pop: Population, rows: list[int], spec: FieldSpec, key: bytes) -> float:
    """Share of records :func:`linked_copies_attack` re-identifies from a field's copies."""
    copies = [encode_sample(pop, rows, spec.copy_spec(s), key, copy=True) for s in spec.salts]
    truth = [pop.values[i] for i in rows]
    return reidentified(linked_copies_attack(copies, pop.frequency), truth)


def _learn_positions(
    bits: Bits, seeds: dict[str, Bits], ngram: int, min_seeds: int
) -> dict[str, Bits]:
    """Each n-gram's positions: the bits set in every seed filter of a value containing it."""
    by_gram: dict[str, list[Bits]] = {}
    for value, seed in seeds.items():
        for gram in set(ngrams(value, ngram)):
            by_gram.setdefault(gram, []).append(seed)
    return {
        gram: np.logical_and.reduce(filters)
        for gram, filters in by_gram.items()
        if len(filters) >= min_seeds
    }


def pattern_mining_attack(
    bits: Bits,
    known: Counter[str],
    *,
    ngram: int,
    seeds: int = 40,
    min_seeds: int = 2,
    radius: int = 0,
) -> list[str | None]:
    """Guess per record from mined n-gram bit patterns (see the module docstring).

    (1) Align the ``seeds`` largest filter groups with the most frequent values (as the
    frequency attack does); (2) mine each n-gram's bit pattern as the bits common to every seed
    filter whose value contains it; (3) for every filter, the n-grams whose whole pattern it
    holds are its observed n-grams; (4) name it by the population value whose n-grams disagree
    least with them, the commoner value first.
    """
    labels = _groups(bits, radius)
    first_row = {label: row for row, label in reversed(list(enumerate(labels.tolist())))}
    ranked = _ranked_groups(labels)[:seeds]
    values = [value for value, _ in known.most_common(seeds)]
    seed_bits = {v: bits[first_row[g]] for g, v in zip(ranked, values, strict=False)}
    patterns = _learn_positions(bits, seed_bits, ngram, min_seeds)
    if not patterns:
        return [None] * len(bits)
    unique, inverse = np.unique(bits, axis=0, return_inverse=True)
    best = _name_filters(unique, patterns, known, ngram)
    return [best[i] for i in np.asarray(inverse).reshape(-1).tolist()]


def _name_filters(
    unique: Bits, patterns: dict[str, Bits], known: Counter[str], ngram: int
) -> list[str | None]:
    """Steps (3) and (4) of :func:`pattern_mining_attack`, per distinct filter."""
    names = list(patterns)
    masks = np.stack([patterns[g] for g in names])  # learned n-grams x bits
    observed = ~np.any(masks[None, :, :] & ~unique[:, None, :], axis=2)  # filters x n-grams
    candidates = list(known)
    expected = np.array(
        [[g in set(ngrams(v, ngram)) for g in names] for v in candidates], dtype=bool
    )
    total = sum(known.values())
    prior = np.array([known[v] for v in candidates], dtype=np.float64) / total
    best: list[str | None] = []
    for row in observed:
        score = -np.count_nonzero(expected != row[None, :], axis=1) + prior * 1e-3
        top = int(np.argmax(score))
        evidence = bool(row.any()) and int(np.sum(score >= score[top] - 1e-3 + 1e-12)) == 1
        best.append(candidates[top] if evidence else None)
    return best


def cell_frequency_attack(
    bits: Bits, cells: Sequence[str], known: Counter[str]
) -> list[str | None]:
    """Frequency alignment inside each salt cell: against salted filters, where the attacker
    sees which records share the salt (equal, unsalted date-of-birth or postcode filters), the
    k-th largest group of equal filters in a cell is named by the k-th most frequent value."""
    _, inverse = np.unique(bits, axis=0, return_inverse=True)
    return _aligned_in_cells(np.asarray(inverse).reshape(-1), cells, known)


def cell_prior(cells: Sequence[str], known: Counter[str]) -> list[str | None]:
    """The same guesses made without the encodings (every record a group of its own): what
    the population's frequencies alone give, which :func:`cell_frequency_attack`'s figure is
    measured against."""
    return _aligned_in_cells(np.arange(len(cells)), cells, known)


def _aligned_in_cells(
    labels: npt.NDArray[np.int64], cells: Sequence[str], known: Counter[str]
) -> list[str | None]:
    ranked_values = [value for value, _ in known.most_common()]
    rows_of: dict[str, list[int]] = {}
    for row, cell in enumerate(cells):
        rows_of.setdefault(cell, []).append(row)
    guesses: list[str | None] = [None] * len(labels)
    for rows in rows_of.values():
        ranked = _ranked_groups(labels[rows])
        name = dict(zip(ranked, ranked_values, strict=False))
        for row in rows:
            guesses[row] = name.get(int(labels[row]))
    return guesses


def reidentified(guesses: Sequence[object | None], truth: Sequence[object]) -> float:
    """Share of records whose guess is their true value (no guess, no re-identification)."""
    hits = sum(1 for g, t in zip(guesses, truth, strict=True) if g is not None and g == t)
    return hits / len(truth) if truth else 0.0


def encode_sample(
    pop: Population, rows: list[int], spec: FieldSpec, key: bytes, *, copy: bool = False
) -> Bits:
    """The sample's filters as the gateway makes them under ``spec`` (hardening included):
    with ``copy``, as one salted copy of a field with several salts (schema version 3,
    :mod:`gateway.salted_positions`), else as a field with one salt or none (version 1, 2)."""
    values: list[str | dt.date | None] = [pop.values[i] for i in rows]
    salts = pop.salts(rows, spec.salt) if spec.salt else None
    if copy and spec.salt and salts is not None:
        keys = copy_keys(key, spec.salt)
        parts = [tuple(salt.split(SALT_SEPARATOR)) for salt in salts]  # the salt's parts
        filters = copy_filters(keys, filter_spec(spec), values, parts)
    else:
        filters = BloomEncoder(filter_spec(spec), key).encode_many(values, salts)
    present = np.ones(len(rows), dtype=bool)
    return unpack(transform(filters, present, spec, key, [f"r{i}" for i in rows]))


def blip_radii(spec: FieldSpec) -> tuple[int, ...]:
    """Grouping radii an attacker tries against BLIP: multiples of the expected distance
    between two noisy filters of one value, 2p(1-p) x stored bits (0 without BLIP)."""
    if not spec.blip:
        return (0,)
    expected = 2 * spec.blip * (1 - spec.blip) * spec.stored_bits
    return tuple(int(expected * factor) + 1 for factor in (1.25, 1.5, 2.0))


def attack_rates(
    pop: Population, rows: list[int], spec: FieldSpec, key: bytes, *, copy: bool = False
) -> dict[str, float]:
    """Share of records each attack re-identifies, with the knowledge that suits it best:
    value frequencies, or (against salted filters) the frequencies of (value, salt) pairs, and
    value frequencies inside each salt cell, counted beyond what the same guesses get without
    the encodings (:func:`cell_prior`: a cell's most frequent value is often right by chance
    alone); against BLIP, filters within a radius count as one value: the frequency attack's
    best radius of :func:`blip_radii` counts, and pattern mining groups within the largest."""
    bits = encode_sample(pop, rows, spec, key, copy=copy)
    truth = [pop.values[i] for i in rows]
    radii = blip_radii(spec)
    rates = {
        "frequency": max(
            reidentified(frequency_attack(bits, pop.frequency, r), truth) for r in radii
        ),
        "pattern_mining": reidentified(
            pattern_mining_attack(bits, pop.frequency, ngram=spec.ngram, radius=radii[-1]), truth
        ),
    }
    if spec.salt:  # the attacker claims a (value, salt) pair; it is right when both are
        pairs = list(zip(truth, pop.salts(rows, spec.salt), strict=True))
        joint = pop.joint_frequency(spec.salt)
        rates["frequency_joint"] = max(
            reidentified(frequency_attack(bits, joint, r), pairs) for r in radii
        )
        cells = pop.cells(rows, spec.salt)
        attacked = reidentified(cell_frequency_attack(bits, cells, pop.frequency), truth)
        prior = reidentified(cell_prior(cells, pop.frequency), truth)
        rates["frequency_in_cells"] = max(0.0, attacked - prior)
    return rates


def strongest_attack(pop: Population, rows: list[int], spec: FieldSpec, key: bytes) -> float:
    return max(attack_rates(pop, rows, spec, key).values())
