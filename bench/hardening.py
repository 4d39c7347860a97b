"""Hardening trade-off: linkage F1 on the demo's synthetic town, and the attack harness's
re-identification rates, for each hardening of the name fields.

    python bench/hardening.py [--people 3000] [--seed 7]

F1 is the demo's figure (the same town, the same engine, records of all five agencies linked
together, scored pairwise against the synthetic truth), computed in-process for each schema
variant. The attacks are those of tests/integration/attacks.py on given_name and family_name
filters of a 5,000-record sample of a Zipf-distributed population of 50,000.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.encode import encode_records  # noqa: E402
from gateway.mapping import canonical_mapping  # noqa: E402
from gateway.pipeline import context_without_policy  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.records import normalise_rows  # noqa: E402
from gateway.schema import default_schema_text  # noqa: E402
from keys import new_secret  # noqa: E402
from linkage.corpus import build_corpus  # noqa: E402
from linkage.engine import LocalEngine, salted_fields  # noqa: E402
from linkage.quality import pairwise_quality  # noqa: E402
from placelink.town import Town, generate_town  # noqa: E402
from policies.linkage_schema import LinkageSchema, parse_schema  # noqa: E402
from tests.integration import attacks  # noqa: E402

NAME_FIELDS = ("given_name", "family_name")
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "salt birth_year": {"salt": "birth_year"},
    "salt birth_date": {"salt": "birth_date"},
    "blip 0.05": {"blip": 0.05},
    "blip 0.10": {"blip": 0.10},
}


def schema_with(hardening: dict[str, Any], fields: tuple[str, ...] = NAME_FIELDS) -> LinkageSchema:
    """The shipped schema with the name fields' hardening replaced by ``hardening``."""
    document = yaml.safe_load(default_schema_text())
    for name in fields:
        spec = document["fields"][name]
        spec.pop("salt", None)
        spec.pop("blip", None)
        spec.update(copy.deepcopy(hardening))
    return parse_schema(document, where="variant")


def town_f1(town: Town, schema: LinkageSchema) -> float:
    """Pairwise F1 of linking every agency's records of the town under ``schema``."""
    context = context_without_policy(schema, policy_id="bench", epoch=0)
    secret, batches, keys = new_secret(), [], []
    for agency, rows in town.canonical_rows.items():
        records = normalise_rows(
            iter(rows), canonical_mapping(agency, list(rows[0])), today=dt.date(2027, 1, 1)
        )
        batch = encode_records(records, secret=secret, context=context, pseudonyms=PseudonymMap())
        batches.append((agency, batch))
        keys += [(agency, record_id) for record_id in records.record_ids]
    result = LocalEngine(salted=salted_fields(schema)).link(build_corpus(batches))
    predicted = dict(zip(keys, result.entity_ids, strict=True))
    truth = {(agency, record_id): person for agency, record_id, person in town.truth}
    return pairwise_quality(predicted, truth).f1


def attack_rates(schema: LinkageSchema, seed: int = 1) -> dict[str, float]:
    """The highest share any attack re-identifies, per name field."""
    rates = {}
    for field in NAME_FIELDS:
        spec = schema.field(field)
        pop = attacks.population(field, 50_000, seed=seed)
        rows = attacks.sample(pop, 5_000, seed=seed)
        rates[field] = attacks.strongest_attack(pop, rows, spec, os.urandom(32))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    town = generate_town(seed=args.seed, people=args.people)
    print(f"{'hardening (names)':<20} {'F1':>7} {'given':>7} {'family':>7}  (share re-identified)")
    for label, hardening in VARIANTS.items():
        schema = schema_with(hardening)
        f1 = town_f1(town, schema)
        rates = attack_rates(schema)
        print(f"{label:<20} {f1:7.4f} {rates['given_name']:7.2%} {rates['family_name']:7.2%}")


if __name__ == "__main__":
    main()
