"""Read-notice policy: accounts that never chose one follow the new default, ``always``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:15:00

The default policy became ``always`` (the MSSanté service notifies the sender "à
l'ouverture"), but the default lives in the code, not in the column: accounts created
before kept the ``ask`` they were given, although nobody chose it.

What the schema can tell apart: nothing records whether ``mdn_policy`` was chosen (the
command ``mssante accounts mdn`` wrote no proof before this revision, and the column has no
"set by the holder" flag). What it can tell is whether an account row was ever changed after
its creation: ``storage.accounts.create`` stamps ``created_at`` and ``updated_at`` with the
same instant, and every later change of the row (``mdn_policy`` included, through
``update_fields``) moves ``updated_at``. So:

- ``ask`` with ``updated_at = created_at``: the row was never changed, the policy is the old
  default, nobody chose it. These, and only these, move to ``always``.
- ``ask`` on a row changed since its creation (a status change, a setting, or an explicit
  ``mssante accounts mdn ADDRESS ask``): it cannot be told whether ``ask`` was chosen. The
  safe reading keeps ``ask``: moving a holder who declined automatic receipts to ``always``
  would tell senders when they read their mail, which cannot be taken back, whereas keeping
  ``ask`` only lets their mail client ask them. The number of such accounts is logged; the
  operator moves them with ``mssante accounts mdn ADDRESS always`` after asking.

From this revision on, every change of the policy is proved in the ledger
(``account-changed``, setting ``mdn_policy``), so an explicit choice can be shown later.
The downgrade does nothing: the rows moved are indistinguishable from accounts created
under the new default.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

log = logging.getLogger("mssante.migrate")

_accounts = sa.table(
    "accounts",
    sa.column("mdn_policy", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    bind = op.get_bind()
    asks = _accounts.c.mdn_policy == "ask"
    never_changed = _accounts.c.updated_at == _accounts.c.created_at
    moved = bind.execute(
        sa.update(_accounts).where(asks, never_changed).values(mdn_policy="always")
    ).rowcount
    kept = bind.execute(
        sa.select(sa.func.count()).select_from(_accounts).where(asks)
    ).scalar_one()
    if moved or kept:
        log.info("mdn_policy_migrated", extra={"fields": {
            "moved_to_always": moved, "kept_ask_undecidable": kept,
            "hint": "accounts changed since creation keep 'ask'; see mssante accounts "
                    "list and mssante accounts mdn ADDRESS always"}})


def downgrade() -> None:
    """Nothing to undo (see the module's docstring)."""
