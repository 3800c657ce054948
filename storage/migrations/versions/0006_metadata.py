"""Message metadata: the date each message was saved in its mailbox (RFC 8514 SAVEDATE).

Messages filed before this revision get their internal date as save date: the moment
they were delivered or appended, which is when they were saved in their first mailbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The database stamps each new row; SQLite cannot add a column with a non-constant
    # default in place, so there the table is rebuilt.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("folder_messages",
                              recreate="always" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("saved_at", sa.DateTime(timezone=True), nullable=True,
                                   server_default=sa.func.now()))
    op.execute("UPDATE folder_messages SET saved_at = internal_date")


def downgrade() -> None:
    with op.batch_alter_table("folder_messages") as batch:
        batch.drop_column("saved_at")
