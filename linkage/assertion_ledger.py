"""Client assertions accepted once, across every worker of the linkage service.

A gateway authenticates at the token endpoint with a ``private_key_jwt`` assertion that carries
a ``jti``; the endpoint accepts each one once while it is valid (RFC 7523, section 3). Under
gunicorn several workers (and, behind one database, several hosts) answer the endpoint, so a
record kept in one process would let a captured assertion be replayed to another worker. The
ledger keeps them in the service's database instead: the SHA-256 of the ``jti`` (the client
chooses it; only its digest is stored) and the assertion's expiry, and it deletes the rows of
assertions that have expired.

    ledger = AssertionLedger(sessions)
    ledger.first_use("3f2a...", expires_at=now + 60, now=now)   # True
    ledger.first_use("3f2a...", expires_at=now + 60, now=now)   # False: a replay
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keys.errors import StorageError
from linkage.tables import UsedAssertionRow

GRACE_S = 60.0  # rows outlive their assertion by the token checks' leeway and then some


class AssertionLedger:
    """The ``used_assertions`` table: one row per accepted assertion until it expires."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def first_use(self, jti: str, *, expires_at: float, now: float) -> bool:
        """Record the assertion; False when any worker recorded it before (a replay)."""
        digest = hashlib.sha256(jti.encode("utf-8")).hexdigest()
        try:
            with self._sessions.begin() as session:
                stale = UsedAssertionRow.expires_at < now - GRACE_S
                session.execute(delete(UsedAssertionRow).where(stale))
            with self._sessions.begin() as session:
                session.add(UsedAssertionRow(jti_sha256=digest, expires_at=expires_at))
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise StorageError(
                f"the token endpoint could not record a client assertion ({type(exc).__name__})",
                fix="check the database is reachable, then ask for a token again",
            ) from None
        return True
