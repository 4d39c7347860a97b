"""Storage of uploads: sessions keyed by batch id, and bodies kept as chunk rows.

A body arrives in chunks (see :mod:`linkage.uploads`); each chunk is stored, in pieces of at
most ``PIECE_BYTES``, in the ``body_chunks`` table in the same transaction that moves the
session's offset on, so a chunk is either wholly received or not at all. A committed session's
chunks are the stored body of its batch (read back with :class:`StoredBody`, any byte range at a
time); a session never committed is deleted when its upload is rejected, or after
``UPLOAD_TTL``. Nothing here holds a whole body in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from keys.errors import InputError, StorageError
from linkage.tables import BatchRow, BodyChunkRow, UploadRow
from policies.clks import EncodedBatch

PIECE_BYTES = 1 << 20
UPLOAD_TTL = dt.timedelta(hours=24)

Transaction = Callable[[str], AbstractContextManager[Session]]


class StoreConflict(StorageError):
    """A write clashed with a row another request wrote first (a unique key); nothing was
    changed. Intake turns it into "already stored" or a replay refusal."""


class OffsetConflict(InputError):
    """A chunk did not start where the session's received bytes end."""


class StoredBody:
    """A body held as chunk rows, read at any offset (a :class:`policies.clks_stream.ClksSource`);
    each read fetches only the rows it spans."""

    def __init__(self, sessions: sessionmaker[Session], batch_id: str, size: int) -> None:
        self._sessions, self._batch_id, self._size = sessions, batch_id, size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if end <= offset:
            return b""
        with self._sessions() as session:
            rows = session.execute(
                select(BodyChunkRow.start, BodyChunkRow.data)
                .where(
                    BodyChunkRow.batch_id == self._batch_id,
                    BodyChunkRow.start < end,
                    BodyChunkRow.start + BodyChunkRow.length > offset,
                )
                .order_by(BodyChunkRow.start)
            ).all()
        return b"".join(data[max(offset - start, 0) : end - start] for start, data in rows)

    def pieces(self) -> Iterator[bytes]:
        """The body from start to end, one stored piece at a time."""
        offset = 0
        while offset < self._size:
            piece = self.read_at(offset, 8 * PIECE_BYTES)
            if not piece:
                raise StorageError(
                    "a stored upload body is shorter than its session says",
                    fix="discard the upload and send it again",
                )
            offset += len(piece)
            yield piece


class UploadStore:
    """Upload sessions and body chunks; reached as ``Store.uploads``."""

    def __init__(self, sessions: sessionmaker[Session], transaction: Transaction) -> None:
        self._sessions, self._transaction = sessions, transaction

    def find(self, batch_id: str) -> UploadRow | None:
        with self._sessions() as session:
            return session.get(UploadRow, batch_id)

    def nonce_seen(self, nonce: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(select(UploadRow.batch_id).where(UploadRow.nonce == nonce))
            return found is not None

    def open(
        self, manifest: dict[str, Any], signature: str, length: int, *, now: dt.datetime
    ) -> UploadRow:
        """A new session at offset 0 (StoreConflict when the batch id or nonce is taken)."""
        row = UploadRow(
            batch_id=str(manifest["batch_id"]), nonce=str(manifest["nonce"]), manifest=manifest,
            signature=signature, length=length, received=0, opened_at=now, committed=False,
        )  # fmt: skip
        with self._transaction("open the upload") as session:
            session.add(row)
        return row

    def append(self, batch_id: str, offset: int, spool: IO[bytes], length: int) -> int:
        """Store ``length`` bytes from ``spool`` at ``offset`` in one transaction; the new
        offset. OffsetConflict (nothing stored) when the session is not at ``offset``."""
        with self._transaction("store the chunk") as session:
            moved = session.execute(
                update(UploadRow)
                .where(
                    UploadRow.batch_id == batch_id,
                    UploadRow.received == offset,
                    UploadRow.committed.is_(False),
                    UploadRow.received + length <= UploadRow.length,
                )
                .values(received=UploadRow.received + length)
            )
            if getattr(moved, "rowcount", 0) != 1:
                raise OffsetConflict(
                    "the chunk does not start where the upload stands, or goes past its length",
                    fix="ask the upload's offset (GET /v1/uploads/<batch_id>) and resume there",
                )
            done = 0
            while done < length:
                piece = spool.read(min(PIECE_BYTES, length - done))
                session.execute(
                    insert(BodyChunkRow),
                    [{"batch_id": batch_id, "start": offset + done, "length": len(piece),
                      "data": piece}],
                )  # fmt: skip
                done += len(piece)
        return offset + length

    def body(self, row: UploadRow) -> StoredBody:
        return StoredBody(self._sessions, row.batch_id, int(row.received))

    def discard(self, batch_id: str) -> None:
        """Delete a session never committed, and its chunks (a rejected upload)."""
        with self._transaction("discard the upload") as session:
            _delete_uncommitted(session, select(UploadRow.batch_id).where(
                UploadRow.batch_id == batch_id, UploadRow.committed.is_(False)))  # fmt: skip

    def expire(self, *, now: dt.datetime, ttl: dt.timedelta = UPLOAD_TTL) -> int:
        """Delete sessions opened before ``now - ttl`` and never committed; how many."""
        with self._transaction("expire old uploads") as session:
            old = select(UploadRow.batch_id).where(
                UploadRow.committed.is_(False), UploadRow.opened_at < now - ttl
            )
            count = session.scalar(select(func.count()).select_from(old.subquery())) or 0
            if count:
                _delete_uncommitted(session, old)
            return int(count)


def _delete_uncommitted(session: Session, ids: Any) -> None:
    session.execute(delete(BodyChunkRow).where(BodyChunkRow.batch_id.in_(ids)))
    session.execute(delete(UploadRow).where(UploadRow.batch_id.in_(ids)))


def mark_committed(session: Session, batch_id: str) -> None:
    """In the batch's storing transaction: its session's chunks become the stored body."""
    session.execute(update(UploadRow).where(UploadRow.batch_id == batch_id).values(committed=True))


def delete_bodies(session: Session, batch_ids: Any) -> None:
    """In a transaction deleting batches: their sessions and body chunks."""
    session.execute(delete(BodyChunkRow).where(BodyChunkRow.batch_id.in_(batch_ids)))
    session.execute(delete(UploadRow).where(UploadRow.batch_id.in_(batch_ids)))


def stored_body(sessions: sessionmaker[Session], batch: BatchRow) -> bytes:
    """A stored batch's whole body (the engine links whole batches in memory)."""
    with sessions() as session:
        row = session.get(UploadRow, batch.batch_id)
    if row is None:
        return b""
    return b"".join(StoredBody(sessions, batch.batch_id, int(row.received)).pieces())


def record_rows(manifest: dict[str, Any], block: EncodedBatch) -> list[dict[str, Any]]:
    """The records table's rows of one block of a batch being stored."""
    hexes = block.pseudonyms.tobytes().hex()
    width = 2 * block.pseudonyms.shape[1]
    names = block.attribute_names
    return [
        {
            "batch_id": manifest["batch_id"],
            "policy_id": manifest["policy_id"],
            "source": manifest["source"],
            "pseudonym": hexes[row * width : (row + 1) * width],
            "attributes": dict(zip(names, values, strict=True)),
        }
        for row, values in enumerate(block.attributes)
    ]
