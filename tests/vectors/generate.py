"""Regenerate a known-answer encoding vector file (TEST secret only; see README.md).

    python tests/vectors/generate.py encoding-v3.json --schema default

Takes the input rows of the existing ``encoding-v1.json`` (names, dates, postcodes, addresses,
NHS numbers chosen to exercise every normaliser, and an all-empty record), encodes them with
the current code under a shipped schema (``default``: version 3, ``default-v1`` or
``hardened``: version 2) and writes the expected bytes. (Run with ``--schema default-v1`` into a
scratch file, it reproduces ``encoding-v1.json`` exactly, which is how its method was
checked.) Run it only for a deliberate change of the encoding, which ships as a new schema or
format version and is in the changelog: a vector that changes silently is the bug these files
exist to catch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from gateway.encode import encode_records  # noqa: E402
from gateway.mapping import canonical_mapping  # noqa: E402
from gateway.pipeline import context_without_policy  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.records import normalise_rows  # noqa: E402
from gateway.schema import default_schema, default_v1_schema, hardened_schema  # noqa: E402
from keys import LinkageSecret  # noqa: E402
from policies.linkage_schema import LinkageSchema  # noqa: E402

TEST_SECRET = bytes(range(32))
NOTE = (
    "TEST VECTORS ONLY: the secret here is a fixed, public TEST secret. Never use it for real data."
)


def load(name: str) -> tuple[LinkageSchema, str]:
    if name == "hardened":
        return hardened_schema(), "gateway.schema.hardened_schema()"
    if name == "default-v1":
        return default_v1_schema(), "gateway.schema.default_v1_schema()"
    return default_schema(), "gateway.schema.default_schema()"


def vectors(schema: LinkageSchema, described: str) -> dict[str, Any]:
    template = json.loads((HERE / "encoding-v1.json").read_text(encoding="utf-8"))
    rows = [dict(record["input"]) for record in template["records"]]
    ctx = context_without_policy(schema, policy_id="kat", epoch=0)
    records = normalise_rows(
        iter(rows), canonical_mapping("kat", list(rows[0])), today=dt.date(2026, 1, 1), strict=True
    )
    secret = LinkageSecret(TEST_SECRET)
    batch = encode_records(records, secret=secret, context=ctx, pseudonyms=PseudonymMap())
    names = [spec.name for spec in ctx.fields]
    return {
        "_note": NOTE,
        "test_secret_hex": TEST_SECRET.hex(),
        "schema": described,
        "schema_sha256": schema.sha256,
        "context": {"policy_id": "kat", "epoch": 0, "policy_version": "unversioned"},
        "today": "2026-01-01",
        "fields": [
            {"name": f.name, "encoding": f.encoding, "bytes": f.nbytes} for f in batch.fields
        ],
        "records": [
            {
                "input": row,
                "present": {n: bool(batch.present[i, j]) for j, n in enumerate(names)},
                "encoded_hex": {n: bytes(batch.values[n][i]).hex() for n in names},
            }
            for i, row in enumerate(rows)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument(
        "--schema", choices=("default", "default-v1", "hardened"), default="default"
    )
    args = parser.parse_args()
    document = vectors(*load(args.schema))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    (HERE / args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
