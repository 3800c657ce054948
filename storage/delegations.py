"""Rows of the ``delegations`` and ``folder_acl`` tables (RFC 4314 rights letters).

A delegation gives another account rights on every folder of a mailbox (the members of an
organisational mailbox, or the delegates of a nominative one); a ``folder_acl`` row narrows
or widens those rights on one folder. Rules on who may grant what live in
``accounts/delegations.py``; this module only reads and writes rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from storage import access
from storage.schema import accounts, delegations, folder_acl, folders
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class Delegation:
    """One delegation with the addresses of both accounts."""

    owner_id: int
    owner: str
    delegate_id: int
    delegate: str
    rights: str
    can_send_as: bool


@dataclass(frozen=True, slots=True)
class SharedFolderRow:
    """A folder of another account that an account can reach, with how it is reached."""

    folder_id: int
    owner_id: int
    owner: str
    name: str
    delegated_rights: str | None  # None: reached through a folder_acl row only
    acl_rights: str | None  # None: no per-folder row for this account


_owner = aliased(accounts)
_delegate = aliased(accounts)


def _query() -> Select[Any]:
    return (
        select(delegations.c.owner_account_id, _owner.c.address,
               delegations.c.delegate_account_id, _delegate.c.address,
               delegations.c.rights, delegations.c.can_send_as)
        .join(_owner, _owner.c.id == delegations.c.owner_account_id)
        .join(_delegate, _delegate.c.id == delegations.c.delegate_account_id)
    )


def _row(r: Row[Any]) -> Delegation:
    owner_id, owner, delegate_id, delegate, rights, send_as = tuple(r)
    return Delegation(int(owner_id), str(owner), int(delegate_id), str(delegate), str(rights),
                      bool(send_as))


async def grant(conn: AsyncConnection, owner_id: int, delegate_id: int, rights: str,
                can_send_as: bool) -> None:
    """Creates or replaces the delegation of ``owner_id`` to ``delegate_id``.

    Raises the access version: open sessions of the delegate re-check their rights."""
    await access.bump(conn)
    found = await get(conn, owner_id, delegate_id)
    if found is None:
        await conn.execute(delegations.insert().values(
            owner_account_id=owner_id, delegate_account_id=delegate_id, rights=rights,
            can_send_as=can_send_as, created_at=utcnow()))
    else:
        await conn.execute(
            update(delegations)
            .where(delegations.c.owner_account_id == owner_id,
                   delegations.c.delegate_account_id == delegate_id)
            .values(rights=rights, can_send_as=can_send_as))


async def revoke(conn: AsyncConnection, owner_id: int, delegate_id: int,
                 delegate_address: str) -> bool:
    """Removes the delegation and the delegate's per-folder rows; False if there was none.

    Raises the access version, so open sessions of the delegate lose the mailbox at once."""
    result = await conn.execute(
        delete(delegations).where(delegations.c.owner_account_id == owner_id,
                                  delegations.c.delegate_account_id == delegate_id))
    owned = select(folders.c.id).where(folders.c.account_id == owner_id)
    await conn.execute(delete(folder_acl).where(folder_acl.c.folder_id.in_(owned),
                                                folder_acl.c.identifier == delegate_address))
    if result.rowcount:
        await access.bump(conn)
    return bool(result.rowcount)


async def get(conn: AsyncConnection, owner_id: int, delegate_id: int) -> Delegation | None:
    row = (await conn.execute(_query().where(
        delegations.c.owner_account_id == owner_id,
        delegations.c.delegate_account_id == delegate_id))).first()
    return None if row is None else _row(row)


async def of_owner(conn: AsyncConnection, owner_id: int) -> list[Delegation]:
    """Who holds rights on ``owner_id``'s mailbox."""
    rows = await conn.execute(_query().where(delegations.c.owner_account_id == owner_id)
                              .order_by(_delegate.c.address))
    return [_row(r) for r in rows]


async def of_delegate(conn: AsyncConnection, delegate_id: int) -> list[Delegation]:
    """Which mailboxes ``delegate_id`` holds rights on."""
    rows = await conn.execute(_query().where(delegations.c.delegate_account_id == delegate_id)
                              .order_by(_owner.c.address))
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Reach:
    """How an account reaches other accounts' folders: owner id → rights of the owner's
    delegation, folder id → rights of a ``folder_acl`` row naming it. Both change only with
    the access version (:mod:`storage.access`), so a reader may keep them as long as it
    does not move."""

    delegated: dict[int, str]
    acl: dict[int, str]


async def reach(conn: AsyncConnection, account_id: int, address: str) -> Reach:
    """The delegations and folder ACL rows of ``account_id`` (two indexed queries)."""
    acl_rows = await conn.execute(
        select(folder_acl.c.folder_id, folder_acl.c.rights)
        .where(folder_acl.c.identifier == address))
    acl = {int(f): r for f, r in acl_rows}
    delegated = {d.owner_id: d.rights for d in await of_delegate(conn, account_id)}
    return Reach(delegated, acl)


async def reached_folders(conn: AsyncConnection, account_id: int,
                          through: Reach) -> list[SharedFolderRow]:
    """The folders ``through`` reaches as they are now (created, renamed or deleted by
    their owners since), of active accounts other than ``account_id``; no query when it
    reaches nothing."""
    delegated, acl = through.delegated, through.acl
    reach: list[Any] = []
    if delegated:
        reach.append(folders.c.account_id.in_(list(delegated)))
    if acl:
        reach.append(folders.c.id.in_(list(acl)))
    if not reach:
        return []
    cond = or_(*reach)
    rows = await conn.execute(
        select(folders.c.id, folders.c.account_id, accounts.c.address, folders.c.name)
        .join(accounts, accounts.c.id == folders.c.account_id)
        .where(and_(cond, folders.c.account_id != account_id, accounts.c.status == "active"))
        .order_by(accounts.c.address, folders.c.name))
    return [SharedFolderRow(int(fid), int(oid), owner, name, delegated.get(int(oid)),
                            acl.get(int(fid))) for fid, oid, owner, name in rows]


async def shared_folders(conn: AsyncConnection, account_id: int,
                         address: str) -> list[SharedFolderRow]:
    """Every folder of another account reachable by ``account_id``: through a delegation of
    its owner, or through a ``folder_acl`` row naming ``address`` (three indexed queries)."""
    return await reached_folders(conn, account_id, await reach(conn, account_id, address))


async def folder_rights(conn: AsyncConnection, folder_id: int) -> list[tuple[str, str]]:
    """The per-folder rows of one folder: ``(identifier, rights)``."""
    rows = await conn.execute(select(folder_acl.c.identifier, folder_acl.c.rights)
                              .where(folder_acl.c.folder_id == folder_id)
                              .order_by(folder_acl.c.identifier))
    return [(i, r) for i, r in rows]


async def set_folder_rights(conn: AsyncConnection, folder_id: int, identifier: str,
                            rights: str | None) -> None:
    """Replaces the row of ``identifier`` on the folder; None removes it. An empty string
    is kept as a row: it takes away rights that a delegation would otherwise give.
    Raises the access version (open sessions re-check their rights)."""
    await access.bump(conn)
    await conn.execute(delete(folder_acl).where(folder_acl.c.folder_id == folder_id,
                                                folder_acl.c.identifier == identifier))
    if rights is not None:
        await conn.execute(folder_acl.insert().values(folder_id=folder_id,
                                                      identifier=identifier, rights=rights))
