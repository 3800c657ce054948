"""Index on messages.received_at: the retention purge counts from a message's arrival.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:00:00

The purge and the expiry digest select by ``received_at`` and the current
``body_retention_days``, so that a changed setting applies to messages already stored
(``expires_at`` stays as the value stamped at arrival, for information).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.create_index("ix_messages_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_received_at")
