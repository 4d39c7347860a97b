"""Storage of the linkage service: SQLAlchemy 2, SQLite embedded, PostgreSQL in production.

Tables: policies registered with the service, batches (the signed manifest and the ``.clks``
body as received), records (pseudonym and released attributes, one row per encoded record),
link runs, and entity memberships of the latest run; and the key state: revoked node keys and,
per policy, the oldest key epoch still accepted. A batch is stored in one transaction:
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


class RevokedKeyRow(Base):
    """Node keys whose uploads are refused from now on (checked by every intake)."""

    __tablename__ = "revoked_keys"
    node_key: Mapped[str] = mapped_column(String(80), primary_key=True)  # the fingerprint
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class EpochFloorRow(Base):
    """Per policy, the oldest key epoch still accepted; older epochs were retired and deleted."""

    __tablename__ = "epoch_floors"
    policy_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)


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

    # --- key state: revoked node keys and retired epochs (see docs/key-ceremony.md) ---------

    def revoke_key(self, node_key: str, *, now: dt.datetime) -> dt.datetime:
        with self._transaction("revoke the node key") as session:
            row = session.get(RevokedKeyRow, node_key)
            if row is None:
                row = RevokedKeyRow(node_key=node_key, revoked_at=now)
                session.add(row)
            return _utc(row.revoked_at)

    def is_revoked(self, node_key: str) -> bool:
        with self._transaction("read the revocation list") as session:
            return session.get(RevokedKeyRow, node_key) is not None

    def revoked_keys(self) -> list[tuple[str, dt.datetime]]:
        with self._transaction("read the revocation list") as session:
            rows = session.scalars(select(RevokedKeyRow).order_by(RevokedKeyRow.revoked_at))
            return [(row.node_key, _utc(row.revoked_at)) for row in rows]

    def epoch_floor(self, policy_id: str) -> int:
        with self._transaction("read the key epochs") as session:
            row = session.get(EpochFloorRow, policy_id)
            return row.epoch if row else 0

    def sources_by_epoch(self, policy_id: str) -> dict[int, set[str]]:
        """Which sources have stored batches in which epoch of a policy."""
        with self._sessions() as session:
            rows = session.execute(
                select(BatchRow.epoch, BatchRow.source)
                .where(BatchRow.policy_id == policy_id)
                .distinct()
            ).all()
        found: dict[int, set[str]] = {}
        for epoch, source in rows:
            found.setdefault(int(epoch), set()).add(source)
        return found

    def retire_epochs_before(self, policy_id: str, epoch: int) -> int:
        """Delete every encoding of the policy's epochs before ``epoch``, atomically; from now
        on their uploads are refused. Returns the number of batches deleted."""
        with self._transaction("retire the old key epochs") as session:
            old = select(BatchRow.batch_id).where(
                BatchRow.policy_id == policy_id, BatchRow.epoch < epoch
            )
            old_records = select(RecordRow.id).where(RecordRow.batch_id.in_(old))
            session.execute(delete(MembershipRow).where(MembershipRow.record_id.in_(old_records)))
            session.execute(delete(RecordRow).where(RecordRow.batch_id.in_(old)))
            deleted = session.execute(
                delete(BatchRow).where(BatchRow.policy_id == policy_id, BatchRow.epoch < epoch)
            )
            session.merge(EpochFloorRow(policy_id=policy_id, epoch=epoch))
            return int(getattr(deleted, "rowcount", 0) or 0)


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite drops the time zone of a stored time; every time stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
