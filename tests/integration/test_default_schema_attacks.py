"""The attack harness (tests/integration/attacks.py) against the default schema's names
(version 3): each name is stored as two copies, one salted with the date of birth and one with
the postcode and the other name; each copy, attacked with the knowledge that suits its salt,
stays at or below 1% (docs/attacks.md). The date-of-birth copy is the hardened schema's name
field (version 2), which tests/integration/test_attacks.py attacks; this attacks the other."""

from __future__ import annotations

import hashlib

import pytest

from gateway.schema import default_schema, hardened_schema
from tests.integration import attacks

TEST_SECRET = hashlib.sha256(b"placelink attack-harness test secret, never for real use").digest()


@pytest.mark.slow
@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_the_default_schemas_second_copy_of_each_name_keeps_every_attack_at_or_below_1pc(
    field: str,
) -> None:
    spec = default_schema().field(field)
    assert spec.salts == ("birth_date", "postcode_other_name")
    assert spec.copy_spec("birth_date") == hardened_schema().field(field)  # attacked there
    population = attacks.population(field, 50_000, seed=1)
    rows = attacks.sample(population, 5_000, seed=1)
    second = spec.copy_spec("postcode_other_name")
    rates = attacks.attack_rates(population, rows, second, TEST_SECRET)
    assert "frequency_in_cells" in rates  # the attacker sees which records share a postcode
    assert max(rates.values()) <= 0.01, rates
