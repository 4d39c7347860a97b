"""``placelink demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from placelink.commands import Commands


def _demo(args: argparse.Namespace) -> int:
    from placelink.demo import format_summary, run_demo

    result = run_demo(Path(args.out), seed=args.seed, people=args.people, progress=not args.quiet)
    if args.json:
        summary = {
            "records": result.records,
            "linkage": result.link_summary,
            "f1": result.quality.f1,
            "seconds": result.seconds,
            "hotspots": result.hotspots,
            "policy": result.policy_line,
            "schema": result.schema_line,
            "node_api": vars(result.node) if result.node else None,
        }
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(result))
    return 0


def register(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="synthetic town -> linked hot-spots, end to end")
    demo.add_argument("--out", default="placelink-demo", help="output folder (./placelink-demo)")
    demo.add_argument("--seed", type=int, default=7, help="town seed (reproducible)")
    demo.add_argument("--people", type=int, default=3000, help="people in the town")
    demo.add_argument("--json", action="store_true", help="machine-readable summary")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)
