"""Alembic's environment for the linkage service's tables (see :mod:`linkage.migrate`).

The service runs it on the connection it holds (``config.attributes["connection"]``, under the
migration lock); a developer's ``alembic`` command (``alembic.ini`` at the repository root)
opens ``sqlalchemy.url`` or else ``PLACELINK_DATABASE_URL``. ``--sql`` (offline mode) prints
the SQL for a DBA instead of running it. Batch mode renders ALTERs SQLite can run.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from linkage.migrate import database_url_from_environment, model_metadata

config = context.config
target_metadata = model_metadata()


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url_from_environment()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    if context.is_offline_mode():
        context.configure(url=_database_url(), target_metadata=target_metadata,
                          literal_binds=True, render_as_batch=True)  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()
        return
    shared = config.attributes.get("connection")
    if shared is not None:
        _run_on(shared)
        return
    engine = create_engine(_database_url(), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


run_migrations()
