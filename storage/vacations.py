"""Rows of ``vacations`` (each account's absence message) and ``vacation_replies`` (which
senders were answered, in which period). The rules live in :mod:`mail.vacation`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import vacation_replies, vacations
from storage.types import utcnow


@dataclass(frozen=True)
class Vacation:
    """One account's absence message. ``period`` changes whenever the settings are saved:
    RFC 5230 §4.2 lets a changed message be sent again to the senders already answered."""

    account_id: int
    enabled: bool
    starts_at: datetime | None
    ends_at: datetime | None
    subject: str
    body: str
    contact: str
    days: int
    period: int

    def active(self, now: datetime) -> bool:
        return self.enabled and (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at)


def sender_key(address: str) -> str:
    """The stored form of a sender: its SHA-256 (no correspondent list kept in clear)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def _vacation(row: object) -> Vacation:
    m = row._mapping  # type: ignore[attr-defined]
    return Vacation(int(m["account_id"]), bool(m["enabled"]), m["starts_at"], m["ends_at"],
                    str(m["subject"]), str(m["body"]), str(m["contact"]), int(m["days"]),
                    int(m["period"]))


async def get(conn: AsyncConnection, account_id: int) -> Vacation | None:
    row = (await conn.execute(select(vacations).where(
        vacations.c.account_id == account_id))).first()
    return _vacation(row) if row is not None else None


async def enabled_for(conn: AsyncConnection, account_ids: Sequence[int]) -> list[Vacation]:
    """The enabled settings among ``account_ids`` (one indexed query per delivery)."""
    if not account_ids:
        return []
    rows = await conn.execute(select(vacations).where(
        vacations.c.account_id.in_(list(account_ids)), vacations.c.enabled.is_(True)))
    return [_vacation(r) for r in rows]


async def save(conn: AsyncConnection, account_id: int, *, enabled: bool,
               starts_at: datetime | None, ends_at: datetime | None, subject: str, body: str,
               contact: str, days: int) -> Vacation:
    """Creates or replaces the settings; a new period begins (answered senders forgotten)."""
    values = dict(enabled=enabled, starts_at=starts_at, ends_at=ends_at, subject=subject,
                  body=body, contact=contact, days=days, updated_at=utcnow())
    current = await get(conn, account_id)
    if current is None:
        await conn.execute(vacations.insert().values(account_id=account_id, period=1,
                                                     **values))
    else:
        await conn.execute(update(vacations).where(vacations.c.account_id == account_id)
                           .values(period=current.period + 1, **values))
    await conn.execute(delete(vacation_replies).where(
        vacation_replies.c.account_id == account_id))
    found = await get(conn, account_id)
    assert found is not None
    return found


async def claim_reply(conn: AsyncConnection, vacation: Vacation, sender: str,
                      now: datetime) -> bool:
    """True when ``sender`` is to be answered now (not yet in this period, or more than
    ``days`` days ago, RFC 5230 §4.1), and records it; False otherwise."""
    key = sender_key(sender)
    row = (await conn.execute(select(vacation_replies).where(
        vacation_replies.c.account_id == vacation.account_id,
        vacation_replies.c.sender_sha256 == key))).first()
    if row is None:
        try:
            async with conn.begin_nested():
                await conn.execute(vacation_replies.insert().values(
                    account_id=vacation.account_id, sender_sha256=key,
                    period=vacation.period, replied_at=now))
        except IntegrityError:
            return False  # a concurrent delivery of the same sender claimed it
        return True
    fresh = int(row.period) == vacation.period and \
        (now - row.replied_at).total_seconds() < vacation.days * 86400
    if fresh:
        return False
    result = await conn.execute(update(vacation_replies).where(
        vacation_replies.c.account_id == vacation.account_id,
        vacation_replies.c.sender_sha256 == key,
        vacation_replies.c.replied_at == row.replied_at,
    ).values(period=vacation.period, replied_at=now))
    return bool(result.rowcount)  # a concurrent delivery that won answers instead
