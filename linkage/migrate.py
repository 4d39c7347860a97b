"""Schema migrations of the linkage service's database (Alembic; revisions in
``linkage/migrations/versions``, shipped inside the package so an installed service can migrate).

The service brings its database to the head revision when it starts (``Store(url)``), unless
told not to (``PLACELINK_MIGRATE_ON_START=0``; then ``placelink linkage migrate`` does it, and
the service refuses to start until it has). ``/readyz`` answers 503 while the database is not
at this code's head (a newer release migrated it, say). Concurrent starters (gunicorn workers,
several hosts) take a lock first: a PostgreSQL advisory lock held for the migrating transaction,
or for a SQLite file an exclusive ``flock`` on ``DATABASE.migrate-lock`` beside it.

A database created before migrations existed (by ``create_all``: every table of the first
revision and no ``alembic_version``) is stamped at the first revision, then upgraded. A
database that holds only some of those tables is refused: it is not one placelink made.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

from keys.errors import ConfigError, StorageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
# The tables ``create_all`` made before migrations existed (the first revision's tables).
PRE_MIGRATION_TABLES = frozenset({
    "policies", "batches", "records", "link_runs", "memberships", "revoked_keys",
    "epoch_floors", "queries", "privacy_budgets",
})  # fmt: skip
_ADVISORY_LOCK = 0x706C_6C6B  # "pllk": one number for every placelink migrator
DEFAULT_DATABASE_URL = "sqlite:///placelink-linkage.db"
_log = logging.getLogger("placelink.migrate")


def database_url_from_environment() -> str:
    """The database URL: the file named by PLACELINK_DATABASE_URL_FILE (a secret: the URL
    holds the password; systemd credentials and compose secrets are files), else
    PLACELINK_DATABASE_URL, else a SQLite file in the working directory."""
    path = os.environ.get("PLACELINK_DATABASE_URL_FILE", "")
    if path:
        try:
            url = Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(
                "PLACELINK_DATABASE_URL_FILE names a file that cannot be read",
                fix="point it at a readable file holding the database URL",
            ) from None
        if not url:
            raise ConfigError("PLACELINK_DATABASE_URL_FILE names an empty file",
                              fix="write the database URL into it")  # fmt: skip
        return url
    return os.environ.get("PLACELINK_DATABASE_URL", "") or DEFAULT_DATABASE_URL


def model_metadata() -> MetaData:
    """Every table the service's models declare (importing the store imports them all)."""
    importlib.import_module("linkage.storage")
    from linkage.tables import Base

    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without any ini file; runs on ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    heads = _scripts().get_heads()
    if len(heads) != 1:
        raise StorageError(
            f"the migrations have {len(heads)} heads, not one",
            fix="merge them: alembic merge heads -m 'merge' (see docs/operator.md)",
        )
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    with engine.connect() as connection:
        return current_revision(connection) == head_revision()


def require_head(engine: Engine) -> None:
    """Refuse a database that is not at the head revision (the service started with
    PLACELINK_MIGRATE_ON_START=0 before anyone ran the migrations)."""
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision != head_revision():
        raise StorageError(
            f"the database is at {revision or 'no revision'}, not at {head_revision()}",
            fix="run `placelink linkage migrate` with the same PLACELINK_DATABASE_URL",
        )


def upgrade_to_head(engine: Engine) -> str:
    """Bring the database to the head revision (a no-op when it is there); returns it."""
    head = head_revision()
    if is_at_head(engine):
        return head
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        config = alembic_config(connection)
        if current_revision(connection) is None and _made_before_migrations(connection):
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")
    _log.info("database migrated", extra={"revision": head})
    return head


def _made_before_migrations(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    ours = tables & PRE_MIGRATION_TABLES
    if not ours:
        return False
    if ours != PRE_MIGRATION_TABLES:
        raise StorageError(
            "the database holds some placelink tables but no migration history",
            fix="point PLACELINK_DATABASE_URL at an empty database or a placelink one",
        )
    return True


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrators of one SQLite file (PostgreSQL locks inside the transaction)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
