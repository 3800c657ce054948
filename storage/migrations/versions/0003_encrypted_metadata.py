"""Header-derived message metadata sealed under each body's data key.

The decoded Subject/From/To/Cc and sent date (search columns) and the IMAP view (ENVELOPE,
BODYSTRUCTURE with attachment file names) were stored in clear and name patients. They move
to two sealed columns (``sealed_view``, ``sealed_fields``; see ``storage.metadata``); the
existing rows are sealed with the data key of their body, which needs the key file (the
caller passes a loader in ``config.attributes["keyring"]``), and the clear columns are
dropped. A purged message has nothing left to seal. The caller then rewrites the database
file so that no free page keeps the old text (``storage.engine.erase_free_pages``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:45:00
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from storage.errors import KeyFileMissing
from storage.keys import Keyring
from storage.metadata import FIELDS, VIEW, pack_fields

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CLEAR_COLUMNS = ("view", "subject", "from_addr", "to_addr", "cc_addr", "date_header")
BATCH = 500


def upgrade() -> None:
    op.add_column("messages", sa.Column("sealed_view", sa.LargeBinary(), nullable=True))
    op.add_column("messages", sa.Column("sealed_fields", sa.LargeBinary(), nullable=True))
    _seal_existing_rows(op.get_bind())
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of the table would drop
    # the old one, which rows of folder_messages and queue reference.
    with op.batch_alter_table("messages", recreate="never") as batch:
        for name in CLEAR_COLUMNS:
            batch.drop_column(name)


def _seal_existing_rows(bind: Any) -> None:
    """Seals the clear metadata of every message whose body is still stored."""
    m = sa.table(
        "messages", sa.column("id"), sa.column("blob_id"), sa.column("purged_at"),
        *(sa.column(c) for c in CLEAR_COLUMNS),
        sa.column("sealed_view", sa.LargeBinary()), sa.column("sealed_fields", sa.LargeBinary()),
    )
    b = sa.table("blobs", sa.column("id"), sa.column("key_id"),
                 sa.column("wrapped_key", sa.LargeBinary()), sa.column("content_sha256"))
    todo = sa.select(sa.func.count()).select_from(m).where(
        m.c.purged_at.is_(None), m.c.blob_id.is_not(None),
        sa.or_(*(m.c[c].is_not(None) for c in CLEAR_COLUMNS)))
    if not bind.execute(todo).scalar():
        return
    load: Callable[[], Keyring] | None = context.config.attributes.get("keyring")
    if load is None:
        raise KeyFileMissing(
            "migration 0003 seals the stored message metadata and needs the key file; "
            "run it through the gateway (mssante init or serve), not the alembic command")
    from storage.blobs import BlobStore  # the running code's key handling, format /1

    store = BlobStore(load(), 65536)
    last = 0
    update = sa.update(m).where(m.c.id == sa.bindparam("mid")).values(
        sealed_view=sa.bindparam("sv"), sealed_fields=sa.bindparam("sf"))
    while True:
        rows = bind.execute(
            sa.select(m.c.id, m.c.blob_id, *(m.c[c] for c in CLEAR_COLUMNS),
                      b.c.key_id, b.c.wrapped_key, b.c.content_sha256)
            .select_from(m.join(b, b.c.id == m.c.blob_id))
            .where(m.c.id > last, m.c.purged_at.is_(None))
            .order_by(m.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        values = []
        for r in rows:
            last = r.id
            if not r.wrapped_key:
                continue  # body purged: nothing to keep
            key = store.metadata_key(r.blob_id, r.key_id, bytes(r.wrapped_key),
                                     r.content_sha256)
            view = None
            if r.view is not None:
                # The column held the view's JSON text as a JSON string literal.
                text = json.loads(r.view)
                view = key.seal(VIEW, text.encode("utf-8", "surrogatepass"))
            fields = key.seal(FIELDS, pack_fields(
                (r.subject, r.from_addr, r.to_addr, r.cc_addr, r.date_header)))
            values.append({"mid": r.id, "sv": view, "sf": fields})
        if values:
            bind.execute(update, values)


def downgrade() -> None:
    raise NotImplementedError(
        "0003 cannot be undone: the metadata is only stored sealed; restore a backup")
