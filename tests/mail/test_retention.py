"""Retention on SQLite and PostgreSQL: bodies purged, mailboxes told, proofs kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from accounts.mailboxes import add_mailbox
from mail.changes import ChangeHub
from mail.pipeline import Delivery, LocalTarget, Pipeline, RemoteTarget
from mail.retention import purge_expired
from storage import folders, proofs
from storage.errors import BlobIntegrityError, BlobNotFound
from storage.schema import blob_segments, folder_messages, messages
from storage.types import utcnow

RAW = (
    b"From: demo@mssante.test\r\nTo: demo@mssante.test\r\nSubject: Compte rendu patient\r\n"
    b"Message-ID: <r1@mssante.test>\r\n\r\nBody with patient data\r\n"
)


async def test_purge_after_retention(database) -> None:  # type: ignore[no-untyped-def]
    db = database
    hub = ChangeHub()
    pipeline = Pipeline(db, db.settings, hub)
    await pipeline.start()
    try:
        box = await add_mailbox(db, "demo@mssante.test", type="PER", name="Dr Demo",
                                idnat="810000000001")
        async with db.read() as conn:
            inbox = await folders.get(conn, box.account.id, "INBOX")
        assert inbox is not None
        target = LocalTarget("demo@mssante.test", box.account.id, inbox.id)
        stored = await pipeline.submit(Delivery(raw=RAW, sender="demo@mssante.test",
                                                local=[target]))
        queued = await pipeline.submit(Delivery(
            raw=RAW.replace(b"r1@", b"r2@"), sender="demo@mssante.test",
            remote=[RemoteTarget("x@hopital-b.mssante.test")]))
    finally:
        await pipeline.stop()
    watcher = hub.watch(inbox.id)

    # Not yet expired: nothing happens.
    assert (await purge_expired(db, hub)).purged == 0

    later = utcnow() + timedelta(days=db.settings.storage.body_retention_days + 1)
    report = await purge_expired(db, hub, now=later)
    assert report.purged == 1 and report.kept_for_queue == 1 and report.mailbox_rows == 1
    assert watcher.is_set()
    async with db.read() as conn:
        row = (await conn.execute(select(messages).where(
            messages.c.id == stored.message_id))).one()
        assert row.purged_at is not None
        assert row.sealed_fields is None and row.sealed_view is None
        assert row.content_sha256 == stored.content_sha256  # proofs can still name it
        left = (await conn.execute(select(func.count()).select_from(blob_segments).where(
            blob_segments.c.blob_id == row.blob_id))).scalar_one()
        assert left == 0
        fm = (await conn.execute(select(folder_messages).where(
            folder_messages.c.message_id == stored.message_id))).one()
        assert fm.expunged_modseq is not None
        kinds = [p.kind for p in await proofs.get_by_message(conn, "<r1@mssante.test>")]
        assert kinds == ["delivered", "purged"]
        with pytest.raises((BlobIntegrityError, BlobNotFound)):
            await db.blobs.read(conn, row.blob_id)
        queued_row = (await conn.execute(select(messages.c.purged_at).where(
            messages.c.id == queued.message_id))).scalar_one()
        assert queued_row is None  # still queued: its body is kept
