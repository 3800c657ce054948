"""Accounts repository: the mailboxes (PER nominative, ORG organisational, APP applicative)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import access, directory_version
from storage.errors import AlreadyExists, NotFound
from storage.schema import ACCOUNT_STATUSES, ACCOUNT_TYPES, accounts
from storage.types import utcnow


@dataclass(frozen=True)
class Account:
    id: int
    address: str
    type: str
    display_name: str
    given_name: str
    surname: str
    idnat: str | None
    rpps: str | None
    adeli: str | None
    profession_code: str | None
    specialty_code: str | None
    structure_id: str | None
    structure_name: str | None
    status: str
    is_admin: bool
    mdn_policy: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"invalid account {name} {value!r}: expected one of {', '.join(allowed)}")


async def create(
    conn: AsyncConnection,
    *,
    address: str,
    type: str,  # noqa: A002 - the column's name
    status: str = "pending",
    **fields: Any,
) -> Account:
    """Creates an account; the address is stored lower-case and must be new.

    ``fields`` are any other column of :data:`storage.schema.accounts` (display_name, rpps…).
    """
    _check("type", type, ACCOUNT_TYPES)
    _check("status", status, ACCOUNT_STATUSES)
    unknown = set(fields) - set(accounts.c.keys())
    if unknown:
        raise ValueError(f"unknown account fields: {', '.join(sorted(unknown))}")
    address = address.strip().lower()
    if "@" not in address:
        raise ValueError(f"invalid account address {address!r}: expected local@domain")
    now = utcnow()
    try:
        async with conn.begin_nested():
            new_id = (
                await conn.execute(
                    accounts.insert()
                    .values(
                        address=address,
                        type=type,
                        status=status,
                        created_at=now,
                        updated_at=now,
                        **fields,
                    )
                    .returning(accounts.c.id)
                )
            ).scalar_one()
    except IntegrityError:
        raise AlreadyExists(f"an account with address {address!r} already exists") from None
    account = await get_by_id(conn, new_id)
    assert account is not None
    await directory_version.bump(conn)
    return account


async def get_by_id(conn: AsyncConnection, account_id: int) -> Account | None:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    return None if row is None else Account(**row._mapping)


async def get_by_address(conn: AsyncConnection, address: str) -> Account | None:
    """Looks an account up by address, case-insensitively (addresses are stored lower-case)."""
    row = (
        await conn.execute(select(accounts).where(accounts.c.address == address.strip().lower()))
    ).first()
    return None if row is None else Account(**row._mapping)


async def list_accounts(
    conn: AsyncConnection,
    *,
    status: str | None = None,
    type: str | None = None,  # noqa: A002
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Account]:
    """Accounts ordered by address, optionally filtered by status and type; ``search``
    keeps those whose address or display name contains it (case-insensitively)."""
    stmt = select(accounts).order_by(accounts.c.address).limit(limit).offset(offset)
    if search:
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        stmt = stmt.where(or_(accounts.c.address.like(pattern, escape="\\"),
                              func.lower(accounts.c.display_name).like(pattern, escape="\\")))
    if status is not None:
        _check("status", status, ACCOUNT_STATUSES)
        stmt = stmt.where(accounts.c.status == status)
    if type is not None:
        _check("type", type, ACCOUNT_TYPES)
        stmt = stmt.where(accounts.c.type == type)
    return [Account(**r._mapping) for r in await conn.execute(stmt)]


async def set_status(conn: AsyncConnection, account_id: int, status: str) -> None:
    """Moves an account to ``status`` (pending, active, suspended, closed).

    Raises the access version (open sessions of a suspended or closed account end) and the
    directory version (the running gateway publishes or removes the entry at once)."""
    _check("status", status, ACCOUNT_STATUSES)
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(status=status, updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise NotFound(f"account {account_id} does not exist")
    await access.bump(conn)
    await directory_version.bump(conn)


async def update_fields(conn: AsyncConnection, account_id: int, **fields: Any) -> None:
    """Updates profile columns (display_name, settings, …) of an account (never its
    address or type: they are fixed at creation); raises the
    directory version, since names and settings (liste rouge) are what it publishes."""
    # MSSanté rule: a mailbox's type and address never change after creation
    unknown = set(fields) - (set(accounts.c.keys()) - {"id", "address", "type", "created_at"})
    if unknown:
        raise ValueError(f"cannot update account fields: {', '.join(sorted(unknown))}")
    if "status" in fields:
        _check("status", fields["status"], ACCOUNT_STATUSES)
    result = await conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(updated_at=utcnow(), **fields)
    )
    if result.rowcount == 0:
        raise NotFound(f"account {account_id} does not exist")
    if "status" in fields:
        await access.bump(conn)
    await directory_version.bump(conn)
