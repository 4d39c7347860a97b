"""Uploads in chunks: the uploads and body_chunks tables; batch bodies move out of batches.body

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:05:00

Each stored batch gets a committed ``uploads`` row (its manifest and nonce; no signature, which
was never kept) and its body as ``body_chunks`` pieces of at most 1 MiB; then ``batches.body``
is dropped. A downgrade puts the bodies back into ``batches.body`` and drops the new tables (an
upload that was never committed is lost with them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PIECE_BYTES = 1 << 20  # linkage.upload_storage.PIECE_BYTES when this revision was written

_batches = sa.table(
    "batches",
    sa.column("batch_id", sa.String),
    sa.column("nonce", sa.String),
    sa.column("manifest", sa.JSON),
    sa.column("body", sa.LargeBinary),
    sa.column("received_at", sa.DateTime(timezone=True)),
)
_uploads = sa.table(
    "uploads",
    sa.column("batch_id", sa.String),
    sa.column("nonce", sa.String),
    sa.column("manifest", sa.JSON),
    sa.column("signature", sa.String),
    sa.column("length", sa.BigInteger),
    sa.column("received", sa.BigInteger),
    sa.column("opened_at", sa.DateTime(timezone=True)),
    sa.column("committed", sa.Boolean),
)
_chunks = sa.table(
    "body_chunks",
    sa.column("batch_id", sa.String),
    sa.column("start", sa.BigInteger),
    sa.column("length", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
        sa.UniqueConstraint("nonce"),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_opened_at"), ["opened_at"], unique=False)
    op.create_table(
        "body_chunks",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["uploads.batch_id"]),
        sa.PrimaryKeyConstraint("batch_id", "start"),
    )
    _move_bodies_to_chunks()
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("body")


def _move_bodies_to_chunks() -> None:
    """One batch at a time, so a large database is never read whole."""
    bind = op.get_bind()
    for (batch_id,) in bind.execute(sa.select(_batches.c.batch_id)).all():
        row = bind.execute(sa.select(_batches).where(_batches.c.batch_id == batch_id)).one()
        body = bytes(row.body or b"")
        bind.execute(_uploads.insert().values(
            batch_id=batch_id, nonce=row.nonce, manifest=row.manifest, signature="",
            length=len(body), received=len(body), opened_at=row.received_at, committed=True,
        ))  # fmt: skip
        for start in range(0, len(body), PIECE_BYTES):
            piece = body[start : start + PIECE_BYTES]
            bind.execute(_chunks.insert().values(
                batch_id=batch_id, start=start, length=len(piece), data=piece))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    for (batch_id,) in bind.execute(sa.select(_batches.c.batch_id)).all():
        pieces = bind.execute(
            sa.select(_chunks.c.data)
            .where(_chunks.c.batch_id == batch_id)
            .order_by(_chunks.c.start)
        ).scalars()  # fmt: skip
        body = b"".join(bytes(p) for p in pieces)
        bind.execute(_batches.update().where(_batches.c.batch_id == batch_id).values(body=body))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("body_chunks")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_opened_at"))
    op.drop_table("uploads")
