"""Merkle tree over the proof ledger: stored subtrees, and signed notes on checkpoints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00

Self-contained: it only adds a table and two nullable columns. Records written before it
are hashed into the tree by the next append or checkpoint (storage/proofs.py ``_tree``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RFC 9162 §2.1: every complete subtree, (level, idx); level 0 holds the leaf hashes.
    op.create_table(
        "proof_tree",
        sa.Column("level", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    with op.batch_alter_table("proof_checkpoints") as batch:
        batch.add_column(sa.Column("root", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proof_checkpoints") as batch:
        batch.drop_column("note")
        batch.drop_column("root")
    op.drop_table("proof_tree")
