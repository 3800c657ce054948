"""Proof tree: the rows of the four lowest levels are dropped (hashed again from records).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00

``proof_tree`` kept every complete subtree of the Merkle tree over the proofs, about two
rows per record, which made each accepted message's commit write several more database
pages (one per level's tail). From this revision the ledger keeps only the subtrees of 16
leaves or more (``storage.merkle.STORED_FROM``) and hashes the smaller ones again from
their 16 records when a proof needs them, so the rows below are redundant: every one of
them is a hash of records that stay. Nothing is signed over them (checkpoints sign the
root), so dropping them changes no proof, root or checkpoint.

The downgrade leaves them out: the previous code reading a proof that needs one would say a
stored node is missing; ``mssante proofs verify`` still verifies the whole ledger from its
records. Rebuild them, if ever needed, by deleting ``proof_tree`` and the ``proofs.tree``
meta row: the next append hashes the whole ledger in again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

STORED_FROM = 4  # frozen copy of storage.merkle.STORED_FROM at this revision

_tree = sa.table("proof_tree", sa.column("level", sa.Integer))


def upgrade() -> None:
    op.get_bind().execute(sa.delete(_tree).where(_tree.c.level < STORED_FROM))


def downgrade() -> None:
    """Nothing to restore (see the module's docstring)."""
