"""The attack harness (tests/integration/attacks.py) against the default schema's names
(version 3): each name is stored as two copies, one salted with the date of birth and one with
the postcode and the other name; each copy, encoded as the gateway encodes copies
(gateway/salted_positions.py) and attacked with the knowledge that suits its salt, stays at or
below 1% (docs/attacks.md)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.schema import default_schema
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
