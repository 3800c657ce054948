"""The sent instant of each message (``messages.sent_at``), for the date order of lists.

The webmail lists a folder newest first by the Date field's instant (RFC 5256 §2.2 SORT
DATE: the INTERNALDATE when the field is missing or unreadable). Reading it from every
header of a 100,000-message folder at each list would decrypt them all; the instant is a
time that names no one, so it is kept in clear beside the arrival time. Existing rows get
it from their sealed IMAP view (which holds the Date field's instant), which needs the key
file as revision 0003 did; a purged message has no view and keeps NULL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:30:00
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from storage.errors import KeyFileMissing
from storage.keys import Keyring
from storage.metadata import VIEW

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Within the years a timestamp holds, as mail.pipeline.sent_at stores them.
_FIRST = int((datetime(1, 1, 2, tzinfo=UTC) - _EPOCH).total_seconds())
_LAST = int((datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH).total_seconds())


def upgrade() -> None:
    op.add_column("messages", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    _fill_existing_rows(op.get_bind())


def _fill_existing_rows(bind: Any) -> None:
    m = sa.table("messages", sa.column("id"), sa.column("blob_id"), sa.column("purged_at"),
                 sa.column("sealed_view", sa.LargeBinary()), sa.column("sent_at"))
    b = sa.table("blobs", sa.column("id"), sa.column("key_id"),
                 sa.column("wrapped_key", sa.LargeBinary()), sa.column("content_sha256"))
    todo = sa.select(sa.func.count()).select_from(m).where(
        m.c.purged_at.is_(None), m.c.sealed_view.is_not(None))
    if not bind.execute(todo).scalar():
        return
    load: Callable[[], Keyring] | None = context.config.attributes.get("keyring")
    if load is None:
        raise KeyFileMissing(
            "migration 0009 reads the sent date of the stored messages and needs the key "
            "file; run it through the gateway (mssante init or serve), not the alembic command")
    from storage.blobs import BlobStore  # the running code's key handling

    store = BlobStore(load(), 65536)
    sqlite = bind.dialect.name == "sqlite"
    update = sa.update(m).where(m.c.id == sa.bindparam("mid")).values(
        sent_at=sa.bindparam("sent"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(m.c.id, m.c.blob_id, m.c.sealed_view, b.c.key_id, b.c.wrapped_key,
                      b.c.content_sha256)
            .select_from(m.join(b, b.c.id == m.c.blob_id))
            .where(m.c.id > last, m.c.purged_at.is_(None), m.c.sealed_view.is_not(None))
            .order_by(m.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        values = []
        for r in rows:
            last = r.id
            if not r.wrapped_key:
                continue
            key = store.metadata_key(r.blob_id, r.key_id, bytes(r.wrapped_key),
                                     r.content_sha256)
            epoch = json.loads(key.open(VIEW, bytes(r.sealed_view)))["search"].get("date")
            if epoch is None:
                continue
            when = _EPOCH + timedelta(seconds=min(max(int(epoch), _FIRST), _LAST))
            values.append({"mid": r.id, "sent": when.replace(tzinfo=None) if sqlite else when})
        if values:
            bind.execute(update, values)


def downgrade() -> None:
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.drop_column("sent_at")
