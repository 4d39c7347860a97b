"""``placelink linkage migrate``: the linkage service operator's jobs.

``migrate`` brings the service's database (PLACELINK_DATABASE_URL_FILE or
PLACELINK_DATABASE_URL, as the service reads them; never argv, the URL holds a password) to the
head migration; ``--check`` only reports, exiting 1 when the database is behind. The service
also migrates when it starts unless PLACELINK_MIGRATE_ON_START=0 (docs/operator.md).
"""

from __future__ import annotations

import argparse
import sys

from placelink.commands import Commands


def _migrate(args: argparse.Namespace) -> int:
    from sqlalchemy import create_engine

    from linkage.migrate import (
        current_revision,
        database_url_from_environment,
        head_revision,
        upgrade_to_head,
    )

    engine = create_engine(database_url_from_environment())
    try:
        with engine.connect() as connection:
            before = current_revision(connection)
        head = head_revision()
        if args.check:
            print(f"database at {before or 'no revision'}; head is {head}")
            return 0 if before == head else 1
        if before != head:
            print(f"migrating from {before or 'no revision'} to {head}", file=sys.stderr)
        print(f"database at {upgrade_to_head(engine)} (head)")
        return 0
    finally:
        engine.dispose()


def register(commands: Commands) -> None:
    linkage = commands.add_parser("linkage", help="the linkage service's jobs (docs/operator.md)")
    verbs = linkage.add_subparsers(dest="verb", required=True)
    migrate = verbs.add_parser("migrate", help="bring the service's database to the head migration")
    migrate.add_argument(
        "--check", action="store_true", help="only report; exit 1 when not at head"
    )
    migrate.set_defaults(handler=_migrate)
