"""Persisted \\Recent high-water mark per folder, and subscriptions of deleted mailboxes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RFC 3501 §2.3.2: messages already announced as recent stay announced after a restart.
    with op.batch_alter_table("folders") as batch:
        batch.add_column(
            sa.Column("recent_uid", sa.BigInteger(), nullable=False, server_default="0")
        )
    # RFC 5258 §3.1 \NonExistent: a subscribed name whose mailbox was deleted.
    op.create_table(
        "lost_subscriptions",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("lost_subscriptions")
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("recent_uid")
