"""Metadata: the date each message was saved in its mailbox (RFC 8514 SAVEDATE), and
server and mailbox annotations (RFC 5464 METADATA).

Messages filed before this revision get their internal date as save date: the moment
they were delivered or appended, which is when they were saved in their first mailbox.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # The database stamps each new row; SQLite cannot add a column with a non-constant
    # default in place, so there the table is rebuilt.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("folder_messages",
                              recreate="always" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("saved_at", sa.DateTime(timezone=True), nullable=True,
                                   server_default=sa.func.now()))
    op.execute("UPDATE folder_messages SET saved_at = internal_date")
    op.create_table(
        "annotations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("folder_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["folder_id"], ["folders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_annotations_account_folder", "annotations",
                    ["account_id", "folder_id"])


def downgrade() -> None:
    op.drop_index("ix_annotations_account_folder", table_name="annotations")
    op.drop_table("annotations")
    with op.batch_alter_table("folder_messages") as batch:
        batch.drop_column("saved_at")
