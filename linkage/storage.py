"""Storage of the linkage service: SQLAlchemy 2, SQLite embedded, PostgreSQL in production.

Tables: policies registered with the service, batches (the signed manifest and the ``.clks``
body as received), records (pseudonym and released attributes, one row per encoded record),
link runs, and entity memberships of the latest run. A batch is stored in one transaction:
a failure leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    create_engine,
    delete,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from keys.errors import StorageError
from linkage.hotspots import EntityRecord
from policies.clks import EncodedBatch, load_clks


class Base(DeclarativeBase):
    pass


class PolicyRow(Base):
    __tablename__ = "policies"
    policy_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(50))
    policy_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


class BatchRow(Base):
    __tablename__ = "batches"
    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.policy_id"), index=True)
    source: Mapped[str] = mapped_column(String(100))
    epoch: Mapped[int] = mapped_column(Integer)
    schema_hash: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    body_sha256: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RecordRow(Base):
    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id"), index=True)
    policy_id: Mapped[str] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)


class LinkRunRow(Base):
    __tablename__ = "link_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy_id: Mapped[str] = mapped_column(String(200), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    records: Mapped[int] = mapped_column(Integer)
    entities: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class MembershipRow(Base):
    __tablename__ = "memberships"
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(200), index=True)
    entity_id: Mapped[str] = mapped_column(String(40), index=True)


class Store:
    """All reads and writes of the linkage service go through here."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(
                f"the store could not {what} ({type(exc).__name__}); nothing was changed",
                fix="check the database is reachable and has space, then retry",
            ) from None

    def register_policy(
        self, policy_id: str, version: str, policy_hash: str, document: dict[str, Any]
    ) -> None:
        with self._transaction("register the policy") as session:
            session.merge(
                PolicyRow(
                    policy_id=policy_id, version=version, policy_hash=policy_hash, document=document
                )
            )

    def find_batch(self, batch_id: str) -> BatchRow | None:
        with self._sessions() as session:
            return session.get(BatchRow, batch_id)

    def nonce_seen(self, nonce: str) -> bool:
        with self._sessions() as session:
            return (
                session.scalar(select(BatchRow.batch_id).where(BatchRow.nonce == nonce)) is not None
            )

    def store_batch(self, manifest: dict[str, Any], body: bytes, batch: EncodedBatch) -> None:
        """Store the batch and one row per record, atomically."""
        with self._transaction("store the batch") as session:
            session.add(_batch_row(manifest, body))
            session.flush()
            names = batch.attribute_names
            session.add_all(
                RecordRow(
                    batch_id=manifest["batch_id"],
                    policy_id=manifest["policy_id"],
                    source=manifest["source"],
                    pseudonym=batch.pseudonym_hex(row),
                    attributes=dict(zip(names, batch.attributes[row], strict=True)),
                )
                for row in range(len(batch))
            )

    def batches(self, policy_id: str, epoch: int) -> list[tuple[str, EncodedBatch, list[int]]]:
        """Every stored batch of a policy and epoch: (source, batch, record row ids in order)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(BatchRow)
                .where(BatchRow.policy_id == policy_id, BatchRow.epoch == epoch)
                .order_by(BatchRow.received_at, BatchRow.batch_id)
            ).all()
            result = []
            for row in rows:
                ids = session.scalars(
                    select(RecordRow.id)
                    .where(RecordRow.batch_id == row.batch_id)
                    .order_by(RecordRow.id)
                ).all()
                result.append((row.source, load_clks(row.body), list(ids)))
            return result

    def replace_memberships(
        self, policy_id: str, epoch: int, assignments: dict[int, str], summary: dict[str, Any]
    ) -> None:
        """Record a link run and its entity memberships, replacing the previous run's."""
        with self._transaction("record the link run") as session:
            session.execute(delete(MembershipRow).where(MembershipRow.policy_id == policy_id))
            session.add_all(
                MembershipRow(record_id=r, policy_id=policy_id, entity_id=e)
                for r, e in assignments.items()
            )
            session.add(
                LinkRunRow(
                    policy_id=policy_id,
                    epoch=epoch,
                    finished_at=dt.datetime.now(dt.UTC),
                    records=len(assignments),
                    entities=len(set(assignments.values())),
                    summary=summary,
                )
            )

    def memberships(self, policy_id: str) -> dict[int, str]:
        """Record row id -> entity id of the latest link run (empty before the first)."""
        with self._sessions() as session:
            rows = session.execute(
                select(MembershipRow.record_id, MembershipRow.entity_id).where(
                    MembershipRow.policy_id == policy_id
                )
            ).all()
        return {record: entity for record, entity in rows}

    def latest_run_summary(self, policy_id: str, epoch: int) -> dict[str, Any] | None:
        """The summary of the latest link run of a policy and epoch, if any."""
        with self._sessions() as session:
            row = session.scalars(
                select(LinkRunRow)
                .where(LinkRunRow.policy_id == policy_id, LinkRunRow.epoch == epoch)
                .order_by(LinkRunRow.id.desc())
                .limit(1)
            ).first()
        return dict(row.summary) if row is not None else None

    def entity_links(self, policy_id: str, source: str) -> list[tuple[str, str]]:
        """(pseudonym, entity id) of one source's records in the latest link run."""
        with self._sessions() as session:
            rows = session.execute(
                select(RecordRow.pseudonym, MembershipRow.entity_id)
                .join(MembershipRow, RecordRow.id == MembershipRow.record_id)
                .where(MembershipRow.policy_id == policy_id, RecordRow.source == source)
                .order_by(RecordRow.id)
            ).all()
        return [(pseudonym, entity) for pseudonym, entity in rows]

    def entity_records(
        self, policy_id: str, area_attribute: str, month_attribute: str
    ) -> list[EntityRecord]:
        """Records of the latest link run, with the attributes hot-spot queries use."""
        with self._sessions() as session:
            rows = session.execute(
                select(MembershipRow.entity_id, RecordRow.source, RecordRow.attributes)
                .join(RecordRow, RecordRow.id == MembershipRow.record_id)
                .where(MembershipRow.policy_id == policy_id)
            ).all()
        return [
            EntityRecord(entity, source, attrs.get(area_attribute), attrs.get(month_attribute))
            for entity, source, attrs in rows
        ]


def _batch_row(manifest: dict[str, Any], body: bytes) -> BatchRow:
    return BatchRow(
        batch_id=manifest["batch_id"],
        policy_id=manifest["policy_id"],
        source=manifest["source"],
        epoch=int(manifest["epoch"]),
        schema_hash=manifest["schema_hash"],
        record_count=int(manifest["record_count"]),
        body_sha256=manifest["body_sha256"],
        nonce=manifest["nonce"],
        manifest=manifest,
        body=body,
        received_at=dt.datetime.now(dt.UTC),
    )
