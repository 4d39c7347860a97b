"""The linkage service's tables (SQLAlchemy 2 declarative models), one class per table.

Policies, uploads (a batch's signed manifest, and its ``.clks`` body as received, in chunk
rows: sessions in progress and committed batches alike), batches (one row per stored batch),
records (pseudonym and released
attributes), link runs, entity memberships, hot-spot queries and the privacy-budget ledger, and
the key state (revoked node keys, per-policy epoch floors), and the client assertions the token
endpoint accepted (until they expire). All access goes through
:class:`linkage.storage.Store`; nothing here holds an identifier in clear.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class UploadRow(Base):
    """An upload session, keyed by batch id: the signed manifest, how many bytes of the body
    arrived, and whether it was committed (then a batches row exists and the chunks are the
    stored body). Sessions never committed are deleted on rejection or after expiry."""

    __tablename__ = "uploads"
    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(200))  # base64url, as the header carries it
    length: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    committed: Mapped[bool] = mapped_column(Boolean)


class BodyChunkRow(Base):
    """One piece of an upload's body, at its byte offset (at most PIECE_BYTES long)."""

    __tablename__ = "body_chunks"
    batch_id: Mapped[str] = mapped_column(ForeignKey("uploads.batch_id"), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    length: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


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


class QueryRow(Base):
    __tablename__ = "queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    analyst: Mapped[str] = mapped_column(String(64), index=True)
    policy_id: Mapped[str] = mapped_column(String(200), index=True)
    policy_version: Mapped[str] = mapped_column(String(50))
    policy_hash: Mapped[str] = mapped_column(String(64))
    link_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    epsilon: Mapped[float] = mapped_column(Float)
    treatments: Mapped[dict[str, Any]] = mapped_column(JSON)


class BudgetRow(Base):
    __tablename__ = "privacy_budgets"
    analyst: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    epsilon_spent: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class UsedAssertionRow(Base):
    """A client assertion (private_key_jwt) the token endpoint accepted: the SHA-256 of its
    ``jti`` and when the assertion expires (seconds since the epoch); kept until then, so that
    no worker accepts it twice."""

    __tablename__ = "used_assertions"
    jti_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class BudgetSpent(Exception):
    """The analyst's budget under the policy cannot pay for this query (nothing was spent)."""
