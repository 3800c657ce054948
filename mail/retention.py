"""Retention: message bodies are kept 3 months, then purged; proofs stay forever.

docs/architecture.md §2 step 5 and §1 rule 4. A body past ``expires_at`` is removed from
every mailbox (expunged with a tombstone, so IMAP sessions and QRESYNC clients are told),
its encrypted segments and data key are destroyed, the columns that could carry patient data
(subject, addresses, the precomputed view) are cleared, and a ``purged`` proof is recorded.
What the proofs need to name the message (Message-ID, content hash, size) stays.

Bodies are kept while the outbound queue still holds the message (a DSN may need it), and a
body shared with a younger message (single-instance storage) is kept for that message.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, true, update

from mail.changes import ChangeHub
from storage import messages as message_rows
from storage import proofs
from storage import queue as queue_rows
from storage.database import Database
from storage.schema import folder_messages, messages
from storage.types import utcnow

log = logging.getLogger("mssante.retention")


@dataclass
class PurgeReport:
    purged: int = 0
    kept_for_queue: int = 0
    mailbox_rows: int = 0


async def purge_expired(
    db: Database, changes: ChangeHub | None = None, *, now: datetime | None = None,
    batch: int = 200,
) -> PurgeReport:
    """Purges every message whose retention has ended; one transaction per batch."""
    now = now or utcnow()
    report = PurgeReport()
    skipped: set[int] = set()
    while True:
        folders: set[int] = set()
        async with db.begin() as conn:
            due = (
                await conn.execute(
                    select(messages.c.id, messages.c.blob_id, messages.c.message_id_header,
                           messages.c.content_sha256)
                    .where(messages.c.expires_at <= now, messages.c.purged_at.is_(None),
                           messages.c.id.not_in(skipped) if skipped else true())
                    .order_by(messages.c.id)
                    .limit(batch)
                )
            ).all()
            if not due:
                break
            for msg in due:
                if await queue_rows.pending_for_message(conn, msg.id):
                    skipped.add(msg.id)
                    report.kept_for_queue += 1
                    continue
                rows = (
                    await conn.execute(
                        select(folder_messages.c.folder_id, folder_messages.c.uid).where(
                            folder_messages.c.message_id == msg.id,
                            folder_messages.c.expunged_modseq.is_(None),
                        )
                    )
                ).all()
                by_folder: defaultdict[int, list[int]] = defaultdict(list)
                for folder_id, uid in rows:
                    by_folder[folder_id].append(uid)
                for folder_id, uids in by_folder.items():
                    await message_rows.expunge(conn, folder_id, uids)
                folders.update(by_folder)
                report.mailbox_rows += len(rows)
                await conn.execute(
                    update(messages).where(messages.c.id == msg.id).values(
                        purged_at=now, sealed_view=None, sealed_fields=None,
                    )
                )
                if msg.blob_id is not None:
                    still_used = (
                        await conn.execute(
                            select(func.count()).select_from(messages).where(and_(
                                messages.c.blob_id == msg.blob_id,
                                messages.c.purged_at.is_(None),
                            ))
                        )
                    ).scalar_one()
                    if not still_used:
                        await db.blobs.purge(conn, msg.blob_id)
                await proofs.append(
                    conn, kind="purged", message_ref=msg.message_id_header,
                    content_sha256=msg.content_sha256, actor=None,
                    details={"mailboxes": len(by_folder), "reason": "retention period ended"},
                )
                report.purged += 1
        if changes is not None:
            changes.changed(folders)
    if report.purged or report.kept_for_queue:
        log.info("retention_purge", extra={"fields": {
            "purged": report.purged, "kept_for_queue": report.kept_for_queue}})
    return report
