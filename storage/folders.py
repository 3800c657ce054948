"""Folders repository: IMAP mailboxes, their UID and MODSEQ counters.

Names are full paths with ``/`` as hierarchy delimiter. UIDs (RFC 9051 §2.3.1.1) and
mod-sequences (RFC 7162 §3.1.1) are allocated with one ``UPDATE … RETURNING`` each, so two
concurrent deliveries to the same folder never get the same value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import meta
from storage.errors import AlreadyExists, NotFound
from storage.schema import folders
from storage.types import utcnow

DELIMITER = "/"

# RFC 6154 §2: special-use attributes of the default folders.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
)


@dataclass(frozen=True)
class Folder:
    id: int
    account_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    created_at: datetime
    recent_uid: int = 0


def _check_name(name: str) -> str:
    if not name or name.startswith(DELIMITER) or name.endswith(DELIMITER) or "//" in name:
        raise ValueError(f"invalid folder name {name!r}")
    # RFC 9051 §5.1: INBOX is case-insensitive; store it in one spelling.
    return "INBOX" + name[5:] if name[:5].upper() == "INBOX" and name[5:6] in ("", "/") else name


async def _new_uidvalidity(conn: AsyncConnection) -> int:
    """A UIDVALIDITY never given before (RFC 9051 §2.3.1.1: a re-created name must differ)."""
    return await meta.next_counter(conn, "uidvalidity", at_least=int(time.time()) & 0x7FFFFFFF)


async def create(
    conn: AsyncConnection,
    account_id: int,
    name: str,
    *,
    special_use: str | None = None,
    subscribed: bool = True,
) -> Folder:
    """Creates a folder; :class:`AlreadyExists` if the account already has one by that name."""
    name = _check_name(name)
    try:
        async with conn.begin_nested():
            new_id = (
                await conn.execute(
                    folders.insert()
                    .values(
                        account_id=account_id,
                        name=name,
                        special_use=special_use,
                        uidvalidity=await _new_uidvalidity(conn),
                        uidnext=1,
                        highestmodseq=1,
                        subscribed=subscribed,
                        created_at=utcnow(),
                    )
                    .returning(folders.c.id)
                )
            ).scalar_one()
    except IntegrityError:
        raise AlreadyExists(f"folder {name!r} already exists") from None
    return await get_by_id(conn, new_id)


async def create_default_folders(conn: AsyncConnection, account_id: int) -> list[Folder]:
    """INBOX, Sent, Drafts, Trash, Archive (those missing are created)."""
    existing = {f.name for f in await list_folders(conn, account_id)}
    for name, special in DEFAULT_FOLDERS:
        if name not in existing:
            await create(conn, account_id, name, special_use=special)
    return await list_folders(conn, account_id)


async def get_by_id(conn: AsyncConnection, folder_id: int) -> Folder:
    row = (await conn.execute(select(folders).where(folders.c.id == folder_id))).first()
    if row is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return Folder(**row._mapping)


async def get(conn: AsyncConnection, account_id: int, name: str) -> Folder | None:
    row = (
        await conn.execute(
            select(folders).where(
                folders.c.account_id == account_id, folders.c.name == _check_name(name)
            )
        )
    ).first()
    return None if row is None else Folder(**row._mapping)


async def list_folders(conn: AsyncConnection, account_id: int) -> list[Folder]:
    rows = await conn.execute(
        select(folders).where(folders.c.account_id == account_id).order_by(folders.c.name)
    )
    return [Folder(**r._mapping) for r in rows]


async def rename(conn: AsyncConnection, folder_id: int, new_name: str) -> None:
    """Renames a folder and its sub-folders (RFC 9051 §6.3.6); UIDVALIDITY is kept."""
    folder = await get_by_id(conn, folder_id)
    new_name = _check_name(new_name)
    prefix = folder.name + DELIMITER
    try:
        async with conn.begin_nested():
            await conn.execute(
                update(folders).where(folders.c.id == folder_id).values(name=new_name)
            )
            children = await conn.execute(
                select(folders.c.id, folders.c.name).where(
                    folders.c.account_id == folder.account_id,
                    func.substr(folders.c.name, 1, len(prefix)) == prefix,
                )
            )
            for child in children.all():
                await conn.execute(
                    update(folders)
                    .where(folders.c.id == child.id)
                    .values(name=new_name + DELIMITER + child.name[len(prefix) :])
                )
    except IntegrityError:
        raise AlreadyExists(f"folder {new_name!r} already exists") from None


async def delete_folder(conn: AsyncConnection, folder_id: int) -> None:
    """Deletes a folder and its mailbox rows (ON DELETE CASCADE); bodies stay for others."""
    result = await conn.execute(delete(folders).where(folders.c.id == folder_id))
    if result.rowcount == 0:
        raise NotFound(f"folder {folder_id} does not exist")


async def set_subscribed(conn: AsyncConnection, folder_id: int, subscribed: bool) -> None:
    await conn.execute(
        update(folders).where(folders.c.id == folder_id).values(subscribed=subscribed)
    )


async def allocate_uids(conn: AsyncConnection, folder_id: int, n: int) -> int:
    """Reserves ``n`` consecutive UIDs and returns the first one."""
    if n < 1:
        raise ValueError(f"cannot allocate {n} UIDs")
    uidnext = (
        await conn.execute(
            update(folders)
            .where(folders.c.id == folder_id)
            .values(uidnext=folders.c.uidnext + n)
            .returning(folders.c.uidnext)
        )
    ).scalar()
    if uidnext is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return int(uidnext) - n


_NEXT_MODSEQ = (
    update(folders)
    .where(folders.c.id == bindparam("folder"))
    .values(highestmodseq=folders.c.highestmodseq + 1)
    .returning(folders.c.highestmodseq)
)


_RESERVE = (
    update(folders)
    .where(folders.c.id == bindparam("folder"))
    .values(uidnext=folders.c.uidnext + bindparam("n"),
            highestmodseq=folders.c.highestmodseq + 1)
    .returning(folders.c.uidnext, folders.c.highestmodseq)
)


async def reserve(conn: AsyncConnection, folder_id: int, n: int) -> tuple[int, int]:
    """``allocate_uids`` then ``next_modseq`` in one statement: (first UID, new MODSEQ).

    COPY files its rows under one new MODSEQ; one round trip instead of two on the folder
    row it locks anyway (RFC 3501 §2.3.1.1 ascending UIDs, RFC 7162 §3.1.1)."""
    if n < 1:
        raise ValueError(f"cannot allocate {n} UIDs")
    row = (await conn.execute(_RESERVE, {"folder": folder_id, "n": n})).first()
    if row is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return int(row[0]) - n, int(row[1])


async def next_modseq(conn: AsyncConnection, folder_id: int) -> int:
    """Increments the folder's HIGHESTMODSEQ and returns the new value (RFC 7162 §3.1.1)."""
    modseq = (await conn.execute(_NEXT_MODSEQ, {"folder": folder_id})).scalar()
    if modseq is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return int(modseq)
