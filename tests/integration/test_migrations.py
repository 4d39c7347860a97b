"""The Alembic migrations build exactly the tables the models declare, on SQLite and
PostgreSQL; they go down and up again; and a database made before migrations existed is
adopted with its data."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from keys.errors import StorageError
from linkage.migrate import (
    FIRST_REVISION,
    PRE_MIGRATION_TABLES,
    alembic_config,
    head_revision,
    is_at_head,
    model_metadata,
    upgrade_to_head,
)
from linkage.storage import Store
from linkage.tables import PolicyRow

HOW_TO_ADD = (
    "the models and the migrations differ: {diff}\n"
    "Add a revision for your model change (docs/operator.md, 'Changing the tables'):\n"
    "  PLACELINK_DATABASE_URL=sqlite:////tmp/placelink-rev.db alembic upgrade head\n"
    "  PLACELINK_DATABASE_URL=sqlite:////tmp/placelink-rev.db "
    'alembic revision --autogenerate -m "what changed"\n'
    "then read the new file under linkage/migrations/versions/ and commit it."
)


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, model_metadata()))
    finally:
        engine.dispose()


def test_the_migrations_have_one_head() -> None:
    # Two helpers' revisions on the same parent make two heads: merge or rebase one of them.
    assert head_revision()


def test_upgrade_from_empty_equals_the_models(database_url: str) -> None:
    store = Store(database_url)
    assert is_at_head(store.engine)
    store.engine.dispose()
    differences = _differences(database_url)
    assert differences == [], HOW_TO_ADD.format(diff=differences)


def test_downgrade_to_nothing_and_up_again(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        upgrade_to_head(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        upgrade_to_head(engine)
        assert is_at_head(engine)
    finally:
        engine.dispose()
    assert _differences(database_url) == []


def test_a_database_made_before_migrations_is_adopted_with_its_data(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:  # what create_all made: revision 0001, no history
            command.upgrade(alembic_config(connection), FIRST_REVISION)
            connection.execute(text("DROP TABLE alembic_version"))
            connection.execute(
                PolicyRow.__table__.insert().values(
                    policy_id="p", version="1", policy_hash="0" * 64, document={}
                )
            )
    finally:
        engine.dispose()
    store = Store(database_url)
    try:
        assert is_at_head(store.engine)
        with store.engine.connect() as connection:
            assert connection.scalar(select(PolicyRow.__table__.c.version)) == "1"
            tables = set(inspect(connection).get_table_names())
        assert tables >= PRE_MIGRATION_TABLES
    finally:
        store.engine.dispose()
    assert _differences(database_url) == []


def test_a_foreign_database_with_some_of_our_tables_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE policies (x INTEGER)"))
    engine.dispose()
    with pytest.raises(StorageError, match="no migration history"):
        Store(url)


def test_without_migrate_the_store_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(StorageError, match="placelink linkage migrate"):
        Store(url, migrate=False)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == []  # left alone
    upgrade_to_head(engine)
    Store(url, migrate=False)  # at head: opens


def _open_store(url: str) -> None:
    Store(url).engine.dispose()


def test_concurrent_starters_migrate_once(database_url: str) -> None:
    # Gunicorn workers start together: each opens the store; the lock lets one migrate.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_store, args=(database_url,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert _differences(database_url) == []
