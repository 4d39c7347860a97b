"""Storage of the linkage service: SQLAlchemy 2, SQLite embedded, PostgreSQL in production.

Tables: policies registered with the service, uploads and their body chunks (see
:mod:`linkage.upload_storage`: the ``.clks`` body as received, in chunk rows), batches (the
signed manifest of each stored batch), records (pseudonym and released attributes, one row per
encoded record), link runs, entity memberships of the latest run, hot-spot queries (the
decision taken on each, see :mod:`linkage.query_log`) and the privacy-budget ledger (epsilon
spent per analyst and policy); and the key state (:mod:`linkage.key_state`: revoked node keys
and, per policy, the oldest key epoch still accepted). A batch is stored in one transaction,
its records inserted block by block as the body is read: a failure leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keys.errors import StorageError
from linkage.assertion_ledger import AssertionLedger
from linkage.hotspots import EntityRecord
from linkage.key_state import KeyState
from linkage.migrate import require_head, upgrade_to_head
from linkage.query_log import QueryEntry
from linkage.tables import (
    Base,
    BatchRow,
    BudgetRow,
    BudgetSpent,
    EpochFloorRow,
    LinkRunRow,
    MembershipRow,
    PolicyRow,
    QueryRow,
    RecordRow,
    RevokedKeyRow,
)
from linkage.upload_storage import (
    StoreConflict,
    UploadStore,
    mark_committed,
    record_rows,
    stored_body,
)
from policies.clks import EncodedBatch, load_clks


class Store:
    """All reads and writes of the linkage service go through here."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        """Open the store and bring its tables to the head migration; with ``migrate`` False,
        refuse a database that is not already there (``placelink linkage migrate`` does it;
        see :mod:`linkage.migrate`)."""
        # pool_pre_ping: a connection the server dropped (a restart) is replaced, not used.
        sqlite = url.startswith("sqlite")  # a writer waits up to 30 s for another's commit
        self.engine: Engine = create_engine(
            url, future=True, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {}
        )
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
            None,
            "",
            ":memory:",
        ):
            event.listen(self.engine, "connect", _sqlite_wal)
        if migrate:
            upgrade_to_head(self.engine)
        else:
            require_head(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.on_query: list[Callable[[QueryEntry], None]] = []  # the audit log's seam
        self.uploads = UploadStore(self._sessions, self._transaction)
        self.key_state = KeyState(self._sessions, self._transaction)  # revocations, epochs
        self.assertions = AssertionLedger(self._sessions)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise StoreConflict(
                f"the store could not {what}: another request stored it first; nothing was changed",
                fix="ask again: the answer says whether it is already stored",
            ) from None
        except SQLAlchemyError as exc:
            raise StorageError(
                f"the store could not {what} ({type(exc).__name__}); nothing was changed",
                fix="check the database is reachable and has space, then retry",
            ) from None

    def register_policy(
        self, policy_id: str, version: str, policy_hash: str, document: dict[str, Any]
    ) -> None:
        """Insert or update the policy's row in one statement: gunicorn workers starting
        together all register the same policies (a read-then-insert would race)."""
        values = {"version": version, "policy_hash": policy_hash, "document": document}
        upsert = _dialect_insert(self.engine.dialect.name)(PolicyRow)
        statement = upsert.values(policy_id=policy_id, **values).on_conflict_do_update(
            index_elements=["policy_id"], set_=values
        )
        with self._transaction("register the policy") as session:
            session.execute(statement)

    def find_batch(self, batch_id: str) -> BatchRow | None:
        with self._sessions() as session:
            return session.get(BatchRow, batch_id)

    def nonce_seen(self, nonce: str) -> bool:
        with self._sessions() as session:
            return (
                session.scalar(select(BatchRow.batch_id).where(BatchRow.nonce == nonce)) is not None
            )

    def store_batch(self, manifest: dict[str, Any], blocks: Iterable[EncodedBatch]) -> int:
        """Store the batch and one row per record, block by block, in one transaction; the
        batch's upload session (whose chunks hold the body) is marked committed in the same
        transaction. An error while reading the blocks rolls everything back. A batch id or
        nonce stored by another request first raises StoreConflict. Returns the record count."""
        stored = 0
        with self._transaction("store the batch") as session:
            session.add(_batch_row(manifest))
            session.flush()
            for block in blocks:
                if len(block):  # Core, not the ORM's bulk path: a third of the time
                    rows = record_rows(manifest, block)
                    session.connection().execute(insert(RecordRow), rows)
                stored += len(block)
            mark_committed(session, str(manifest["batch_id"]))
        return stored

    def batch_body(self, batch_id: str) -> bytes:
        """A stored batch's ``.clks`` body (reassembled from its chunk rows)."""
        row = self.find_batch(batch_id)
        return b"" if row is None else stored_body(self._sessions, row)

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
                result.append((row.source, load_clks(stored_body(self._sessions, row)), list(ids)))
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

    def load_linked_records(
        self, policy_id: str, chunks: Iterable[Sequence[tuple[str, str, dict[str, Any]]]]
    ) -> int:
        """Bulk-load already linked records (entity id, source, attributes), chunk by chunk,
        as one link run: for benchmarks and tests that need a large linked population without
        encodings. Each source gets an empty synthetic batch. Returns the link run's id."""
        now = dt.datetime.now(dt.UTC)
        entities: set[str] = set()
        sources: set[str] = set()
        loaded = 0
        with self._transaction("load linked records") as session:
            first = (session.scalar(select(func.max(RecordRow.id))) or 0) + 1
            session.execute(delete(MembershipRow).where(MembershipRow.policy_id == policy_id))
            for part in chunks:
                for source in {source for _, source, _ in part} - sources:
                    session.add(_synthetic_batch(policy_id, source, first, now))
                    sources.add(source)
                session.flush()
                rows, members = _linked_rows(policy_id, first, loaded, part)
                session.execute(insert(RecordRow), rows)
                session.execute(insert(MembershipRow), members)
                entities.update(entity for entity, _, _ in part)
                loaded += len(part)
            run = LinkRunRow(
                policy_id=policy_id, epoch=0, finished_at=now, records=loaded,
                entities=len(entities), summary={"synthetic": True},
            )  # fmt: skip
            session.add(run)
            session.flush()
            return run.id

    def latest_link_run(self, policy_id: str) -> int | None:
        with self._sessions() as session:
            return session.scalar(
                select(LinkRunRow.id)
                .where(LinkRunRow.policy_id == policy_id)
                .order_by(LinkRunRow.id.desc())
                .limit(1)
            )

    def index_rows(
        self, policy_id: str, area: str, month: str, flags: Sequence[str]
    ) -> list[tuple[str, str, str | None, str | None, int]]:
        """(entity, source, area, month, flag bits) of each record of the latest link run; a
        flag is set where its attribute is "1" (the gateway's ``flag`` generalisation)."""
        attrs = RecordRow.attributes
        columns = [attrs[area].as_string(), attrs[month].as_string()]
        columns += [attrs[name].as_string() for name in flags]
        with self._sessions() as session:
            rows = session.execute(
                select(MembershipRow.entity_id, RecordRow.source, *columns)
                .join(RecordRow, RecordRow.id == MembershipRow.record_id)
                .where(MembershipRow.policy_id == policy_id)
            ).all()
        return [(row[0], row[1], row[2], row[3], _flag_bits(row[4:])) for row in rows]

    def record_query(self, entry: QueryEntry, *, epsilon_total: float | None = None) -> int:
        """Record the query; where it spends epsilon, debit the analyst's ledger in the same
        transaction, refusing (BudgetSpent, nothing recorded) when the total would be passed."""
        with self._transaction("record the query") as session:
            if entry.epsilon > 0:
                _debit(session, entry, epsilon_total or 0.0)
            row = _query_row(entry)
            session.add(row)
            session.flush()
            query_id = row.id
        for hook in self.on_query:
            hook(entry)
        return query_id

    def epsilon_spent(self, analyst: str, policy_id: str) -> float:
        with self._sessions() as session:
            row = session.get(BudgetRow, (analyst, policy_id))
            return row.epsilon_spent if row else 0.0

    def recent_queries(
        self, analyst: str, policy_id: str, link_run: int | None, kind: str, limit: int
    ) -> list[dict[str, Any]]:
        """The canonical form of the analyst's latest answered queries of one kind and run."""
        with self._sessions() as session:
            rows = session.scalars(
                select(QueryRow.query)
                .where(
                    QueryRow.analyst == analyst,
                    QueryRow.policy_id == policy_id,
                    QueryRow.link_run == link_run,
                    QueryRow.kind == kind,
                    QueryRow.decision == "answered",
                )
                .order_by(QueryRow.id.desc())
                .limit(limit)
            ).all()
        return list(rows)

    def queries(self, policy_id: str) -> list[QueryRow]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(QueryRow).where(QueryRow.policy_id == policy_id).order_by(QueryRow.id)
                ).all()
            )


def _linked_rows(
    policy_id: str, first: int, start: int, part: Sequence[tuple[str, str, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, members = [], []
    for offset, (entity, source, attributes) in enumerate(part):
        record_id = first + start + offset
        rows.append(
            {
                "id": record_id,
                "batch_id": f"synthetic-{policy_id}-{source}-{first}",
                "policy_id": policy_id,
                "source": source,
                "pseudonym": f"{record_id:032x}",
                "attributes": attributes,
            }
        )
        members.append({"record_id": record_id, "policy_id": policy_id, "entity_id": entity})
    return rows, members


def _synthetic_batch(policy_id: str, source: str, first: int, now: dt.datetime) -> BatchRow:
    manifest = {"batch_id": f"synthetic-{policy_id}-{source}-{first}", "synthetic": True}
    return BatchRow(
        batch_id=manifest["batch_id"], policy_id=policy_id, source=source, epoch=-1,
        schema_hash="", record_count=0, body_sha256="", nonce=manifest["batch_id"],
        manifest=manifest, received_at=now,
    )  # fmt: skip


def _dialect_insert(dialect: str) -> Any:
    """The INSERT with ``on_conflict_do_update`` of the store's database."""
    if dialect == "postgresql":
        return postgresql.insert
    return sqlite.insert


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """A file SQLite store journals ahead (WAL): readers do not block the writer, and a
    commit costs one fsync instead of several; synchronous=FULL keeps every commit durable
    (a recorded query or an accepted batch survives a power cut)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _flag_bits(values: Sequence[Any]) -> int:
    return sum(1 << i for i, value in enumerate(values) if value == "1")


def _debit(session: Session, entry: QueryEntry, total: float) -> None:
    key = (entry.analyst, entry.policy_id)
    if session.get(BudgetRow, key) is None:
        session.add(
            BudgetRow(analyst=key[0], policy_id=key[1], epsilon_spent=0.0, updated_at=entry.at)
        )
        session.flush()
    debited = session.execute(
        update(BudgetRow)
        .where(
            BudgetRow.analyst == key[0],
            BudgetRow.policy_id == key[1],
            BudgetRow.epsilon_spent + entry.epsilon <= total + 1e-9,
        )
        .values(epsilon_spent=BudgetRow.epsilon_spent + entry.epsilon, updated_at=entry.at)
    )
    if getattr(debited, "rowcount", 0) != 1:
        raise BudgetSpent


def _query_row(entry: QueryEntry) -> QueryRow:
    return QueryRow(
        at=entry.at,
        analyst=entry.analyst,
        policy_id=entry.policy_id,
        policy_version=entry.policy_version,
        policy_hash=entry.policy_hash,
        link_run=entry.link_run,
        kind=str(entry.query.get("kind", "")),
        query=entry.query,
        decision=entry.decision,
        reason=entry.reason[:500],
        epsilon=entry.epsilon,
        treatments=entry.treatments,
    )


def _batch_row(manifest: dict[str, Any]) -> BatchRow:
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
        received_at=dt.datetime.now(dt.UTC),
    )


__all__ = [
    "Base",
    "BatchRow",
    "BudgetRow",
    "BudgetSpent",
    "EpochFloorRow",
    "LinkRunRow",
    "MembershipRow",
    "PolicyRow",
    "QueryRow",
    "RecordRow",
    "RevokedKeyRow",
    "Store",
]
