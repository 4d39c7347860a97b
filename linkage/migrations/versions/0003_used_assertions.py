"""Client assertions used once across workers: the used_assertions table

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:20:00

The token endpoint kept the ``jti`` of each accepted private_key_jwt assertion in the memory of
one worker, so another worker would accept the same assertion again while it was valid. This
table keeps them (as SHA-256 digests) in the database for every worker; rows go when their
assertion expires. A downgrade drops it (the endpoint then has nowhere to keep them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_assertions",
        sa.Column("jti_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("jti_sha256"),
    )
    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_assertions_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_assertions_expires_at"))
    op.drop_table("used_assertions")
