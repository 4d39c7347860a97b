"""The linkage service's key state in its database: revoked node keys, and per policy the
oldest key epoch still accepted (see docs/key-ceremony.md). Every gunicorn worker reads the
same rows, so a revocation or a retirement holds from the next request on, in every worker.

:class:`KeyState` is the store's ``key_state`` (``Store(url).key_state``); it shares the
store's sessions and transactions (a failure raises StorageError, nothing changed).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from linkage.tables import BatchRow, EpochFloorRow, MembershipRow, RecordRow, RevokedKeyRow
from linkage.upload_storage import Transaction, delete_bodies


class KeyState:
    """Revocations and retired epochs: who may still upload, under which epochs."""

    def __init__(self, sessions: sessionmaker[Session], transaction: Transaction) -> None:
        self._sessions, self._transaction = sessions, transaction

    def revoke_key(self, node_key: str, *, now: dt.datetime) -> dt.datetime:
        """Revoke a node key (once: revoking it again keeps the first time); returns when."""
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
            delete_bodies(session, old)
            deleted = session.execute(
                delete(BatchRow).where(BatchRow.policy_id == policy_id, BatchRow.epoch < epoch)
            )
            session.merge(EpochFloorRow(policy_id=policy_id, epoch=epoch))
            return int(getattr(deleted, "rowcount", 0) or 0)


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite drops the time zone of a stored time; every time stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
