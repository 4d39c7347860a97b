"""``placelink encode`` and ``placelink match``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from placelink.commands import Commands, finished

if TYPE_CHECKING:
    from linkage.engine import Engine


def default_workers() -> int:
    """Processes for ``encode`` when ``--workers`` is not given: two where this process may
    run on two CPUs or more (a container's CPU set counts, not the host's), else one. clkhash,
    too, uses every CPU by default. Where the second CPU is idle, a second process takes a
    million-record encode from about 10 s to 5 s, and changes no byte of the result."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no CPU affinity on this platform
        cpus = os.cpu_count() or 1
    return min(2, cpus)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _encode(args: argparse.Namespace) -> int:
    import gc

    from placelink.offline import encode_command

    # A one-shot process building large tables of acyclic objects: the cyclic collector would
    # only scan them again and again (and once more, all of them, when re-enabled).
    gc.disable()

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
        workers=args.workers or default_workers(),
    )
    for name, report in result.report.items():
        counts = f"{report.valid} valid, {report.invalid} invalid, {report.missing} missing"
        if report.unverified:
            counts += f" ({report.unverified} of the valid fail the UK check but are used)"
        print(f"{name}: {counts}", file=sys.stderr)
    print(f"encoded {len(result.batch)} records to {args.output} (local map {args.output}.ids)")
    return finished(args, 0)  # as a process: leaves here, the batch never freed


def _engine(args: argparse.Namespace) -> Engine:
    from linkage.engine import LocalEngine

    if args.scheduler:
        from linkage.dask_engine import DaskEngine

        return DaskEngine(args.scheduler, threshold=args.threshold)
    return LocalEngine(threshold=args.threshold)


def _match(args: argparse.Namespace) -> int:
    from placelink.offline import match_command

    run = match_command([Path(p) for p in args.inputs], Path(args.output), engine=_engine(args))
    result = run.result
    print(
        f"linked {len(result.entity_ids)} records into {result.entity_count} entities; "
        f"largest {result.largest_cluster}; wrote {args.output}"
    )
    sizes = ", ".join(f"{size}: {count}" for size, count in result.cluster_sizes.items())
    print(
        f"{result.candidate_pairs} candidate pairs (reduction ratio "
        f"{result.reduction_ratio:.6f}), {result.links} above the threshold "
        f"{result.threshold:.2f}, {result.refused_merges} merges refused; "
        f"cluster sizes (size: clusters) {sizes}",
        file=sys.stderr,
    )
    if args.explain:
        print(run.explain(*args.explain))
    if args.report:
        paths = run.write_report(Path(args.report))
        print(f"wrote {paths['report']} and {paths['chart']}")
    return 0


def register(commands: Commands) -> None:
    encode = commands.add_parser("encode", help="encode a CSV into a .clks file")
    add = encode.add_argument
    add("--secret-file", required=True, help="linkage secret (key file or >= 32 raw bytes)")
    add("--input", required=True, help="agency CSV")
    add("--output", required=True, help="the .clks file to write")
    add("--schema", help="linkage schema YAML (default: the one --policy pins, else the default)")
    add("--mapping", help="column mapping YAML (default: canonical columns)")
    add("--policy-id", default="offline", help="policy id the keys derive from")
    add("--policy", help="policy YAML to enforce (fields, attributes, dates)")
    add("--epoch", type=int, help="key epoch (default: the secret file's, 0 for a raw file)")
    add("--strict", action="store_true", help="reject the batch on any invalid value")
    add(
        "--workers",
        type=int,
        help="processes sharing the fields of a batch of 20,000 records or more: 1 or 2 "
        "(default: 2 where this process may use two CPUs or more, else 1)",
    )
    encode.set_defaults(handler=_encode)

    match = commands.add_parser("match", help="link .clks files into entities")
    match.add_argument("inputs", nargs="+", help="two or more .clks files")
    match.add_argument("--output", required=True, help="links CSV to write")
    match.add_argument(
        "--threshold",
        type=float,
        help="match-weight threshold (default: the model's, where "
        "a pair's match probability is 1/2)",
    )
    match.add_argument(
        "--explain",
        nargs=2,
        metavar="SOURCE:RECORD_ID",
        help="show why these two records linked or did not, field by field",
    )
    match.add_argument(
        "--report", metavar="DIR", help="write the match-weight chart and model report into DIR"
    )
    match.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the comparisons on this Dask scheduler (tcp://HOST:8786); needs placelink[dask]",
    )
    match.set_defaults(handler=_match)
