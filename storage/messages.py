"""Messages repository: one ``messages`` row per stored body, one ``folder_messages`` row per
mailbox copy (UID, MODSEQ, flags), and the range reads IMAP FETCH needs.

Flags are stored as one space-separated text per mailbox row (sorted, de-duplicated).
Expunge leaves a tombstone (``expunged_modseq``) so QRESYNC can report VANISHED UIDs
(RFC 7162 §3.2.5.1); :func:`forget_expunged` removes tombstones older than a mod-sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.folders import allocate_uids, next_modseq
from storage.schema import folder_messages, messages
from storage.types import utcnow


@dataclass(frozen=True)
class MailboxEntry:
    """A message as seen in one folder: mailbox row + the message columns IMAP serves."""

    id: int
    folder_id: int
    message_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: datetime
    expunged_modseq: int | None
    blob_id: int | None
    size: int
    header_size: int
    content_sha256: str
    message_id_header: str | None
    view: Any


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


async def insert_message(
    conn: AsyncConnection,
    *,
    blob_id: int,
    content_sha256: str,
    size: int,
    header_size: int,
    internal_date: datetime | None = None,
    received_at: datetime | None = None,
    expires_at: datetime | None = None,
    message_id_header: str | None = None,
    view: Any = None,
    subject: str | None = None,
    from_addr: str | None = None,
    to_addr: str | None = None,
    cc_addr: str | None = None,
    date_header: str | None = None,
) -> int:
    """Inserts a message (body already stored as ``blob_id``) and returns its id."""
    now = utcnow()
    return int(
        (
            await conn.execute(
                messages.insert()
                .values(
                    blob_id=blob_id,
                    content_sha256=content_sha256,
                    size=size,
                    header_size=header_size,
                    internal_date=internal_date or now,
                    received_at=received_at or now,
                    expires_at=expires_at,
                    message_id_header=message_id_header,
                    view=view,
                    subject=subject,
                    from_addr=from_addr,
                    to_addr=to_addr,
                    cc_addr=cc_addr,
                    date_header=date_header,
                )
                .returning(messages.c.id)
            )
        ).scalar_one()
    )


async def add_to_folder(
    conn: AsyncConnection,
    folder_id: int,
    message_ids: Sequence[int],
    *,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
) -> list[tuple[int, int]]:
    """Files messages into a folder; returns ``(uid, modseq)`` per message, in order.

    All rows of one call share one new MODSEQ; UIDs are consecutive.
    """
    if not message_ids:
        return []
    first_uid = await allocate_uids(conn, folder_id, len(message_ids))
    modseq = await next_modseq(conn, folder_id)
    when = internal_date
    if when is None:
        dates = dict(
            (
                await conn.execute(
                    select(messages.c.id, messages.c.internal_date).where(
                        messages.c.id.in_(list(message_ids))
                    )
                )
            ).all()
        )
    rows = [
        {
            "folder_id": folder_id,
            "message_id": mid,
            "uid": first_uid + i,
            "modseq": modseq,
            "flags": flags_text(flags),
            "internal_date": when or dates[mid],
        }
        for i, mid in enumerate(message_ids)
    ]
    await conn.execute(folder_messages.insert(), rows)
    return [(first_uid + i, modseq) for i in range(len(message_ids))]


_ENTRY_COLUMNS = (
    folder_messages.c.id,
    folder_messages.c.folder_id,
    folder_messages.c.message_id,
    folder_messages.c.uid,
    folder_messages.c.modseq,
    folder_messages.c.flags,
    folder_messages.c.internal_date,
    folder_messages.c.expunged_modseq,
    messages.c.blob_id,
    messages.c.size,
    messages.c.header_size,
    messages.c.content_sha256,
    messages.c.message_id_header,
    messages.c.view,
)


def _entry(row: Any) -> MailboxEntry:
    m = dict(row._mapping)
    m["flags"] = _flags(m["flags"])
    return MailboxEntry(**m)


async def fetch_range(
    conn: AsyncConnection,
    folder_id: int,
    uid_first: int = 1,
    uid_last: int | None = None,
    *,
    include_expunged: bool = False,
    changed_since: int | None = None,
) -> list[MailboxEntry]:
    """Mailbox rows with ``uid_first <= uid <= uid_last`` in UID order, one query.

    ``changed_since`` keeps rows whose MODSEQ is greater (RFC 7162 §3.1.4.1).
    """
    cond = [folder_messages.c.folder_id == folder_id, folder_messages.c.uid >= uid_first]
    if uid_last is not None:
        cond.append(folder_messages.c.uid <= uid_last)
    if not include_expunged:
        cond.append(folder_messages.c.expunged_modseq.is_(None))
    if changed_since is not None:
        cond.append(folder_messages.c.modseq > changed_since)
    stmt = (
        select(*_ENTRY_COLUMNS)
        .join(messages, messages.c.id == folder_messages.c.message_id)
        .where(and_(*cond))
        .order_by(folder_messages.c.uid)
    )
    return [_entry(r) for r in await conn.execute(stmt)]


async def set_flags(
    conn: AsyncConnection, folder_id: int, uids: Sequence[int], flags: Iterable[str]
) -> int:
    """Replaces the flags of the given UIDs; returns the MODSEQ given to the change."""
    modseq = await next_modseq(conn, folder_id)
    await conn.execute(
        update(folder_messages)
        .where(
            folder_messages.c.folder_id == folder_id,
            folder_messages.c.uid.in_(list(uids)),
            folder_messages.c.expunged_modseq.is_(None),
        )
        .values(flags=flags_text(flags), modseq=modseq)
    )
    return modseq


async def expunge(conn: AsyncConnection, folder_id: int, uids: Sequence[int]) -> int:
    """Marks rows expunged (tombstones kept for VANISHED); returns the expunge MODSEQ."""
    modseq = await next_modseq(conn, folder_id)
    await conn.execute(
        update(folder_messages)
        .where(
            folder_messages.c.folder_id == folder_id,
            folder_messages.c.uid.in_(list(uids)),
            folder_messages.c.expunged_modseq.is_(None),
        )
        .values(expunged_modseq=modseq, modseq=modseq)
    )
    return modseq


async def vanished_since(conn: AsyncConnection, folder_id: int, modseq: int) -> list[int]:
    """UIDs expunged after ``modseq`` (RFC 7162 §3.2.5.1 VANISHED (EARLIER))."""
    rows = await conn.execute(
        select(folder_messages.c.uid)
        .where(folder_messages.c.folder_id == folder_id, folder_messages.c.expunged_modseq > modseq)
        .order_by(folder_messages.c.uid)
    )
    return [int(u) for u in rows.scalars()]
