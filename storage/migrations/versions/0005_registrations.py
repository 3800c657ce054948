"""Registrations: professionals' sign-up requests, from the form to the review decision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("profession_type", sa.String(length=64), nullable=False),
        sa.Column("rpps", sa.String(length=11), nullable=True),
        sa.Column("adeli", sa.String(length=9), nullable=True),
        sa.Column("surname", sa.String(length=128), nullable=False),
        sa.Column("given_name", sa.String(length=128), nullable=False),
        sa.Column("company", sa.String(length=256), nullable=False),
        sa.Column("liberal", sa.Boolean(), nullable=False),
        sa.Column("profession", sa.String(length=128), nullable=False),
        sa.Column("address1", sa.String(length=256), nullable=False),
        sa.Column("address2", sa.String(length=256), nullable=False),
        sa.Column("postal_code", sa.String(length=5), nullable=False),
        sa.Column("city", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=3), nullable=False),
        sa.Column("phone1", sa.String(length=32), nullable=False),
        sa.Column("phone2", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", _TIME, nullable=True),
        sa.Column("token_sent_at", _TIME, nullable=True),
        sa.Column("token_sends", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("confirmed_at", _TIME, nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("account_id", _ID, nullable=True),
        sa.CheckConstraint(
            "status IN ('unconfirmed','pending','approved','rejected')",
            name=op.f("ck_registrations_status"),
        ),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_registrations_email_lower")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_registrations_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
        sa.UniqueConstraint("email", name=op.f("uq_registrations_email")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_registrations_token_hash")),
    )
    with op.batch_alter_table("registrations") as batch_op:
        batch_op.create_index(batch_op.f("ix_registrations_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_registrations_status"))
    op.drop_table("registrations")
