"""The attack harness (tests/integration/attacks.py) against the default schema's names
(version 3): each name is stored as two copies, one salted with the date of birth and one with
the postcode and the other name; each copy, encoded as the gateway encodes copies
(gateway/salted_positions.py) and attacked with the knowledge that suits its salt, stays at or
below 1%, and so do a record's two copies attacked together (docs/attacks.md)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.schema import default_schema, default_v1_schema
from tests.integration import attacks

TEST_SECRET = hashlib.sha256(b"placelink attack-harness test secret, never for real use").digest()


@pytest.mark.slow
@pytest.mark.parametrize("field", ["given_name", "family_name"])
@pytest.mark.parametrize("salt", ["birth_date", "postcode_other_name"])
def test_each_copy_of_each_name_in_the_default_schema_keeps_every_attack_at_or_below_1pc(
    field: str, salt: str
) -> None:
    spec = default_schema().field(field)
    assert spec.salts == ("birth_date", "postcode_other_name")
    population = attacks.population(field, 50_000, seed=1)
    rows = attacks.sample(population, 5_000, seed=1)
    rates = attacks.attack_rates(population, rows, spec.copy_spec(salt), TEST_SECRET, copy=True)
    assert "frequency_in_cells" in rates  # the attacker sees which records share the salt's cell
    assert max(rates.values()) <= 0.01, rates


@pytest.mark.slow
@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_a_records_copies_linked_together_re_identify_at_most_1pc(field: str) -> None:
    """The attacker joins records whose date-of-birth copies or whose postcode copies are
    equal (one name, whatever the salt) and aligns the joined groups' sizes with the names'
    frequencies. The same attack on copies that all equal an unhardened filter (version 1's:
    every record of a name joined) re-identifies as the plain frequency attack does."""
    spec = default_schema().field(field)
    population = attacks.population(field, 50_000, seed=1)
    rows = attacks.sample(population, 5_000, seed=1)
    assert attacks.linked_copies_rate(population, rows, spec, TEST_SECRET) <= 0.01
    plain = attacks.encode_sample(population, rows, default_v1_schema().field(field), TEST_SECRET)
    truth = [population.values[i] for i in rows]
    guesses = attacks.linked_copies_attack([plain, plain], population.frequency)
    assert attacks.reidentified(guesses, truth) >= 0.20  # the attack is one that counts
