"""Registrations repository: sign-up requests and their confirmation tokens (hashes only)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists
from storage.schema import REGISTRATION_STATUSES, registrations
from storage.types import utcnow


@dataclass(frozen=True)
class Registration:
    id: int
    email: str
    status: str
    profession_type: str
    rpps: str | None
    adeli: str | None
    surname: str
    given_name: str
    company: str
    liberal: bool
    profession: str
    address1: str
    address2: str
    postal_code: str
    city: str
    region: str
    department: str
    phone1: str
    phone2: str
    password_hash: str | None
    token_hash: str | None
    token_expires_at: datetime | None
    token_sent_at: datetime | None
    token_sends: int
    created_at: datetime
    confirmed_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    address: str | None
    account_id: int | None


_FIELDS = {f.name for f in fields(Registration)}


def _row(row: Any) -> Registration:
    return Registration(**{k: v for k, v in row._mapping.items() if k in _FIELDS})


async def create(conn: AsyncConnection, **values: Any) -> Registration:
    """Inserts a request; :class:`AlreadyExists` when the e-mail address already has one."""
    unknown = set(values) - set(registrations.c.keys())
    if unknown:
        raise ValueError(f"unknown registration fields: {', '.join(sorted(unknown))}")
    values.setdefault("created_at", utcnow())
    values["email"] = values["email"].strip().lower()
    try:
        async with conn.begin_nested():
            new_id = (await conn.execute(
                registrations.insert().values(**values).returning(registrations.c.id)
            )).scalar_one()
    except IntegrityError:
        raise AlreadyExists(f"a registration for {values['email']!r} already exists") from None
    found = await get(conn, int(new_id))
    assert found is not None
    return found


async def get(conn: AsyncConnection, registration_id: int) -> Registration | None:
    row = (await conn.execute(
        select(registrations).where(registrations.c.id == registration_id))).first()
    return None if row is None else _row(row)


async def get_by_email(conn: AsyncConnection, email: str) -> Registration | None:
    row = (await conn.execute(select(registrations).where(
        registrations.c.email == email.strip().lower()))).first()
    return None if row is None else _row(row)


async def get_by_token_hash(conn: AsyncConnection, token_hash: str) -> Registration | None:
    row = (await conn.execute(select(registrations).where(
        registrations.c.token_hash == token_hash))).first()
    return None if row is None else _row(row)


async def list_by_status(conn: AsyncConnection, status: str,
                         limit: int = 1000) -> list[Registration]:
    """Requests in ``status``, oldest first (the review queue is first come, first served)."""
    if status not in REGISTRATION_STATUSES:
        raise ValueError(f"invalid registration status {status!r}: expected one of "
                         f"{', '.join(REGISTRATION_STATUSES)}")
    rows = await conn.execute(select(registrations).where(registrations.c.status == status)
                              .order_by(registrations.c.created_at, registrations.c.id)
                              .limit(limit))
    return [_row(r) for r in rows]


async def update_fields(conn: AsyncConnection, registration_id: int, *,
                        expect_status: str | None = None, **values: Any) -> bool:
    """Updates a request; with ``expect_status`` only if it is still in that status (two
    administrators deciding at once: the second finds it decided). True if updated."""
    stmt = update(registrations).where(registrations.c.id == registration_id)
    if expect_status is not None:
        stmt = stmt.where(registrations.c.status == expect_status)
    result = await conn.execute(stmt.values(**values))
    return bool(result.rowcount)
