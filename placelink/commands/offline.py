"""``placelink encode`` and ``placelink match``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from placelink.commands import Commands


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _encode(args: argparse.Namespace) -> int:
    from placelink.offline import encode_command

    result = encode_command(
        secret_file=Path(args.secret_file),
        input_path=Path(args.input),
        output_path=Path(args.output),
        schema_path=_path(args.schema),
        mapping_path=_path(args.mapping),
        policy_id=args.policy_id,
        epoch=args.epoch,
        policy_path=_path(args.policy),
        strict=args.strict,
        workers=args.workers,
    )
    for name, report in result.report.items():
        counts = f"{report.valid} valid, {report.invalid} invalid, {report.missing} missing"
        if report.unverified:
            counts += f" ({report.unverified} of the valid fail the UK check but are used)"
        print(f"{name}: {counts}", file=sys.stderr)
    print(f"encoded {len(result.batch)} records to {args.output} (local map {args.output}.ids)")
    return 0


def _match(args: argparse.Namespace) -> int:
    from linkage.engine import LocalEngine
    from placelink.offline import match_command

    engine = LocalEngine(threshold=args.threshold) if args.threshold is not None else None
    result = match_command([Path(p) for p in args.inputs], Path(args.output), engine=engine)
    print(
        f"linked {len(result.entity_ids)} records into {result.entity_count} entities; "
        f"largest {result.largest_cluster}; wrote {args.output}"
    )
    return 0


def register(commands: Commands) -> None:
    encode = commands.add_parser("encode", help="encode a CSV into a .clks file")
    add = encode.add_argument
    add("--secret-file", required=True, help="linkage secret (key file or >= 32 raw bytes)")
    add("--input", required=True, help="agency CSV")
    add("--output", required=True, help="the .clks file to write")
    add("--schema", help="linkage schema YAML (default: the shipped one)")
    add("--mapping", help="column mapping YAML (default: canonical columns)")
    add("--policy-id", default="offline", help="policy id the keys derive from")
    add("--policy", help="policy YAML to enforce (fields, attributes, dates)")
    add("--epoch", type=int, help="key epoch (default: the secret file's, 0 for a raw file)")
    add("--strict", action="store_true", help="reject the batch on any invalid value")
    add(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the fields of a large batch: 1 (default) or 2, which gains only "
        "where a second CPU is idle",
    )
    encode.set_defaults(handler=_encode)

    match = commands.add_parser("match", help="link .clks files into entities")
    match.add_argument("inputs", nargs="+", help="two or more .clks files")
    match.add_argument("--output", required=True, help="links CSV to write")
    match.add_argument("--threshold", type=float, help="match-weight threshold")
    match.set_defaults(handler=_match)
