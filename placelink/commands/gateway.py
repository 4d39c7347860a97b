"""``placelink gateway ...``: an agency node's own checks, before anything is encoded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from placelink.commands import Commands


def _check(args: argparse.Namespace) -> int:
    from gateway.pipeline import check_csv

    mapping = Path(args.mapping) if args.mapping else None
    count, report = check_csv(Path(args.input), mapping_path=mapping)
    rows = {
        name: {
            "valid": r.valid,
            "unverified": r.unverified,
            "invalid": r.invalid,
            "missing": r.missing,
            "validity": round(r.validity, 4),
            "first_invalid_rows": r.first_invalid_rows,
        }
        for name, r in report.items()
    }
    if args.json:
        print(json.dumps({"records": count, "fields": rows}, indent=2))
        return 0
    print(f"{count} records; per field (invalid values would be treated as missing):")
    print(f"  {'field':<14}{'validity':>9}{'valid':>8}{'foreign':>8}{'invalid':>8}{'missing':>8}")
    for name, r in report.items():
        line = f"  {name:<14}{r.validity:>9.2%}{r.valid:>8}{r.unverified:>8}{r.invalid:>8}"
        line += f"{r.missing:>8}"
        first = ", ".join(str(row) for row in r.first_invalid_rows)
        print(line + (f"  first invalid rows: {first}" if first else ""))
    return 0


def register(commands: Commands) -> None:
    gateway = commands.add_parser("gateway", help="agency node: check an extract before encoding")
    verbs = gateway.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser(
        "check", help="per-field validity rates of a CSV through its mapping (encodes nothing)"
    )
    check.add_argument("--input", required=True, help="agency CSV")
    check.add_argument("--mapping", help="column mapping YAML (default: canonical columns)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_check)
