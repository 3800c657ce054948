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

from sqlalchemy import and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import metadata
from storage.blobs import BlobStore
from storage.errors import NotFound
from storage.folders import next_modseq
from storage.schema import blobs, folder_messages, folders, messages
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
    sealed_view: bytes | None  # see storage.metadata


KEY_COLUMNS = (blobs.c.key_id, blobs.c.wrapped_key, blobs.c.content_sha256)
"""The blob columns that open a message's sealed metadata (see :func:`open_sealed`)."""

WITH_KEYS = messages.outerjoin(blobs, blobs.c.id == messages.c.blob_id)
"""Messages joined to the blob row holding their data key."""

SEARCH_FIELDS = ("subject", "from_addr", "to_addr", "cc_addr", "date_header")
"""The sealed search fields, in order: decoded Subject, From, To, Cc, and the sent date
(YYYY-MM-DD, RFC 3501 §6.4.4 SENTON and friends)."""


def open_sealed(store: BlobStore, kind: bytes, sealed: bytes | None, blob_id: int | None,
                key_id: str | None, wrapped_key: bytes | None,
                content_sha256: str | None) -> bytes | None:
    """The plaintext of a sealed metadata column, None when there is none (a purged
    message). A sealed value that fails authentication raises, as an altered body does."""
    if sealed is None or blob_id is None or key_id is None or not wrapped_key \
            or content_sha256 is None:
        return None
    key = store.metadata_key(blob_id, key_id, wrapped_key, content_sha256)
    return key.open(kind, bytes(sealed))


def open_fields(store: BlobStore, sealed: bytes | None, blob_id: int | None,
                key_id: str | None, wrapped_key: bytes | None,
                content_sha256: str | None) -> list[str | None]:
    """The :data:`SEARCH_FIELDS` of a message (all None when it has none)."""
    data = open_sealed(store, metadata.FIELDS, sealed, blob_id, key_id, wrapped_key,
                       content_sha256)
    if data is None:
        return [None] * len(SEARCH_FIELDS)
    return metadata.unpack_fields(data)


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


async def insert_messages(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Inserts message rows (bodies already stored) with one statement; ids in order.

    Each row holds the columns of :data:`storage.schema.messages` except ``id``;
    ``internal_date`` and ``received_at`` default to now.
    """
    if not rows:
        return []
    now = utcnow()
    values = [{"internal_date": now, "received_at": now, **r} for r in rows]
    result = await conn.execute(
        messages.insert().returning(messages.c.id, sort_by_parameter_order=True), values
    )
    return [int(r.id) for r in result]


async def insert_message(conn: AsyncConnection, **columns: Any) -> int:
    """Inserts one message (body already stored as ``blob_id``) and returns its id."""
    [message_id] = await insert_messages(conn, [columns])
    return message_id


@dataclass(frozen=True)
class Placement:
    """One message to file into one folder."""

    folder_id: int
    message_id: int
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None


async def file_messages(conn: AsyncConnection, placements: Sequence[Placement]) -> list[int]:
    """Files messages into folders; returns the UID of each placement, in order.

    Per folder, one UID range and one new MODSEQ serve all its placements (so a batch of
    deliveries costs one update per folder), then every row is inserted at once.
    """
    by_folder: dict[int, list[int]] = {}
    for i, p in enumerate(placements):
        by_folder.setdefault(p.folder_id, []).append(i)
    missing_dates = {p.message_id for p in placements if p.internal_date is None}
    dates: dict[int, datetime] = {}
    if missing_dates:
        dates = dict(
            (
                await conn.execute(
                    select(messages.c.id, messages.c.internal_date).where(
                        messages.c.id.in_(missing_dates)
                    )
                )
            ).all()
        )
    uids = [0] * len(placements)
    rows: list[dict[str, Any]] = []
    reserved = await _reserve(conn, {f: len(ix) for f, ix in by_folder.items()})
    for folder_id, indexes in by_folder.items():
        first, modseq = reserved[folder_id]
        for n, i in enumerate(indexes):
            p = placements[i]
            uids[i] = first + n
            rows.append({
                "folder_id": folder_id, "message_id": p.message_id, "uid": first + n,
                "modseq": modseq, "flags": flags_text(p.flags),
                "internal_date": p.internal_date or dates[p.message_id],
            })
    if rows:
        await conn.execute(folder_messages.insert(), rows)
    return uids


async def _reserve(conn: AsyncConnection, counts: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Reserves ``counts[folder]`` UIDs and the next MODSEQ of every folder in ONE statement:
    folder → (first UID, MODSEQ). Same effect as ``allocate_uids`` then ``next_modseq`` per
    folder, without two round trips per folder on the accept path (RFC 3501 §2.3.1.1 UIDs
    ascending; RFC 7162 §3.1.1 HIGHESTMODSEQ)."""
    if not counts:
        return {}
    rows = await conn.execute(
        update(folders)
        .where(folders.c.id.in_(sorted(counts)))
        .values(
            uidnext=folders.c.uidnext + case(counts, value=folders.c.id, else_=0),
            highestmodseq=folders.c.highestmodseq + 1,
        )
        .returning(folders.c.id, folders.c.uidnext, folders.c.highestmodseq)
    )
    reserved = {int(r[0]): (int(r[1]) - counts[int(r[0])], int(r[2])) for r in rows}
    missing = sorted(set(counts) - set(reserved))
    if missing:
        raise NotFound(f"folder {missing[0]} does not exist")
    return reserved


async def add_to_folder(
    conn: AsyncConnection,
    folder_id: int,
    message_ids: Sequence[int],
    *,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
) -> list[tuple[int, int]]:
    """Files messages into one folder; returns ``(uid, modseq)`` per message, in order.

    All rows of one call share one new MODSEQ; UIDs are consecutive.
    """
    if not message_ids:
        return []
    placed = [Placement(folder_id, m, tuple(flags), internal_date) for m in message_ids]
    uids = await file_messages(conn, placed)
    modseq = (
        await conn.execute(select(folders.c.highestmodseq).where(folders.c.id == folder_id))
    ).scalar_one()
    return [(uid, int(modseq)) for uid in uids]


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
    messages.c.sealed_view,
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
