"""Revision 0002 moves every stored batch body into body_chunks (and back on downgrade),
on SQLite and PostgreSQL: a database of the first revision keeps its batches' bytes."""

from __future__ import annotations

import datetime as dt
import os

import sqlalchemy as sa
from alembic import command
from sqlalchemy import create_engine

from linkage.migrate import FIRST_REVISION, alembic_config
from linkage.storage import Store

BODY = os.urandom(3 * (1 << 20) + 123)  # more than one 1 MiB piece, and a ragged end
OLD_BATCHES = sa.table(
    "batches", *(sa.column(c) for c in ("batch_id", "policy_id", "source", "epoch",
    "schema_hash", "record_count", "body_sha256", "nonce", "received_at")),
    sa.column("manifest", sa.JSON), sa.column("body", sa.LargeBinary),
)  # fmt: skip


def test_stored_bodies_move_to_chunks_and_back(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), FIRST_REVISION)
            connection.execute(sa.text(
                "INSERT INTO policies (policy_id, version, policy_hash, document) "
                "VALUES ('p', '1', :h, '{}')"), {"h": "0" * 64})  # fmt: skip
            connection.execute(OLD_BATCHES.insert().values(
                batch_id="b1", policy_id="p", source="police", epoch=0, schema_hash="s",
                record_count=0, body_sha256="0" * 64, nonce="n1", manifest={"batch_id": "b1"},
                body=BODY, received_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            ))  # fmt: skip
    finally:
        engine.dispose()
    store = Store(database_url)  # upgrades to head
    try:
        assert store.batch_body("b1") == BODY
        session = store.uploads.find("b1")
        assert session is not None and session.committed and session.received == len(BODY)
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), FIRST_REVISION)
        with store.engine.connect() as connection:
            restored = connection.scalar(sa.select(OLD_BATCHES.c.body))
        assert bytes(restored) == BODY
    finally:
        store.engine.dispose()
