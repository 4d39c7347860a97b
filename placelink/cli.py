"""The ``placelink`` command: ``placelink <noun> <verb>`` for role work, and top-level verbs
for the everyday jobs. Results go to stdout, progress and status to stderr. Exit codes: 0 ok,
1 failure, 2 usage. Secrets come from files, never from argv."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from keys import new_secret, write_secret
from keys.errors import PlacelinkError

Handler = Callable[[argparse.Namespace], int]


def _demo(args: argparse.Namespace) -> int:
    from placelink.demo import format_summary, run_demo

    result = run_demo(Path(args.out), seed=args.seed, people=args.people, progress=not args.quiet)
    if args.json:
        print(
            json.dumps(
                {
                    "records": result.records,
                    "linkage": result.link_summary,
                    "f1": result.quality.f1,
                    "seconds": result.seconds,
                    "hotspots": result.hotspots,
                },
                indent=2,
            )
        )
    else:
        print(format_summary(result))
    return 0


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
    )
    for name, report in result.report.items():
        print(
            f"{name}: {report.valid} valid, {report.invalid} invalid, {report.missing} missing",
            file=sys.stderr,
        )
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


def _secret_new(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.exists() and not args.force:
        print(
            f"error: {output} exists\n  fix: choose another path or pass --force", file=sys.stderr
        )
        return 1
    write_secret(new_secret(), output)
    print(f"wrote a new linkage secret to {output} (mode 0600); share it only between gateways")
    return 0


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="synthetic town -> linked hot-spots, end to end")
    demo.add_argument("--out", default="placelink-demo", help="output folder (./placelink-demo)")
    demo.add_argument("--seed", type=int, default=7, help="town seed (reproducible)")
    demo.add_argument("--people", type=int, default=3000, help="people in the town")
    demo.add_argument("--json", action="store_true", help="machine-readable summary")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _add_encode(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    encode = commands.add_parser("encode", help="encode a CSV into a .clks file")
    encode.add_argument(
        "--secret-file", required=True, help="linkage secret (key file or >=32 raw bytes)"
    )
    encode.add_argument("--input", required=True, help="agency CSV")
    encode.add_argument("--output", required=True, help="the .clks file to write")
    encode.add_argument("--schema", help="linkage schema YAML (default: the shipped one)")
    encode.add_argument("--mapping", help="column mapping YAML (default: canonical columns)")
    encode.add_argument("--policy-id", default="offline", help="policy id the keys derive from")
    encode.add_argument("--policy", help="policy YAML to enforce (fields, attributes, dates)")
    encode.add_argument("--epoch", type=int, default=0, help="key epoch")
    encode.add_argument(
        "--strict", action="store_true", help="reject the batch on any invalid value"
    )
    encode.set_defaults(handler=_encode)


def _add_match(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    match = commands.add_parser("match", help="link .clks files into entities")
    match.add_argument("inputs", nargs="+", help="two or more .clks files")
    match.add_argument("--output", required=True, help="links CSV to write")
    match.add_argument("--threshold", type=float, help="match-weight threshold")
    match.set_defaults(handler=_match)


def _add_keys(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="key management").add_subparsers(
        dest="what", required=True
    )
    secret = keys.add_parser("secret", help="the linkage secret").add_subparsers(
        dest="verb", required=True
    )
    new = secret.add_parser("new", help="make a new linkage secret")
    new.add_argument("--output", required=True, help="key file to write (mode 0600)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(handler=_secret_new)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="placelink", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_encode, _add_match, _add_keys):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except PlacelinkError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
