"""The ``placelink`` command: ``placelink <noun> <verb>`` for role work, and top-level verbs
for the everyday jobs. Results go to stdout, progress and status to stderr. Exit codes: 0 ok,
1 failure, 2 usage. Secrets come from files, never from argv.

Each command group lives in its own module under ``placelink/commands/`` and is listed in
``GROUPS``; adding a group is adding a module and a line here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from keys.errors import PlacelinkError
from placelink.commands import (
    Handler,
    audit,
    demo,
    gateway,
    hotspots,
    keys,
    linkage,
    offline,
    policy,
)

# numpy asks the kernel for transparent huge pages for every array of 4 MB or more. Where the
# kernel must first compact memory to find them (a virtual machine whose memory is ballooned),
# each such fault stalls: on the 2-core bench machine a million-record encode spent 0.6-0.8 s
# more in the kernel with the advice than without. numpy reads this at import (the command
# modules import it lazily, so none has happened yet); NUMPY_MADVISE_HUGEPAGE=1 restores it.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

GROUPS = (demo, offline, hotspots, gateway, keys, policy, linkage, audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="placelink", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _handle(build_parser().parse_args(argv))


def run() -> NoReturn:
    """The console script (and ``python -m placelink``): :func:`main` as the whole process,
    which lets a one-shot command leave without the interpreter's teardown
    (:func:`placelink.commands.finished`)."""
    args = build_parser().parse_args()
    args.as_process = True
    sys.exit(_handle(args))


def _handle(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    try:
        return handler(args)
    except PlacelinkError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    run()
