"""``placelink keys ...``: the linkage secret and signing keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from placelink.commands import Commands


def _secret_new(args: argparse.Namespace) -> int:
    from keys import new_secret, write_secret

    output = Path(args.output)
    if output.exists() and not args.force:
        print(
            f"error: {output} exists\n  fix: choose another path or pass --force", file=sys.stderr
        )
        return 1
    write_secret(new_secret(), output)
    print(f"wrote a new linkage secret to {output} (mode 0600); share it only between gateways")
    return 0


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="key management")
    nouns = keys.add_subparsers(dest="what", required=True)
    secret = nouns.add_parser("secret", help="the linkage secret")
    verbs = secret.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser("new", help="make a new linkage secret")
    new.add_argument("--output", required=True, help="key file to write (mode 0600)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(handler=_secret_new)
