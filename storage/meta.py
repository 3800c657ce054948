"""Small key/value facts about the database (active master key id, counters)."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import insert_or_ignore, upsert
from storage.schema import meta


async def get_value(conn: AsyncConnection, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    return (await conn.execute(select(meta.c.value).where(meta.c.key == key))).scalar()


async def set_value(conn: AsyncConnection, key: str, value: str) -> None:
    """Stores ``value`` under ``key`` (insert or replace)."""
    await conn.execute(upsert(conn, meta, ["key"], ["value"]).values(key=key, value=value))


async def next_counter(conn: AsyncConnection, key: str, *, at_least: int = 1) -> int:
    """Increments a counter and returns its new value, never below ``at_least``.

    The row is locked (``FOR UPDATE`` on PostgreSQL; SQLite holds the write lock), so
    concurrent callers get distinct values.
    """
    await conn.execute(insert_or_ignore(conn, meta, ["key"]).values(key=key, value="0"))
    current = (
        await conn.execute(select(meta.c.value).where(meta.c.key == key).with_for_update())
    ).scalar_one()
    value = max(int(current) + 1, at_least)
    await conn.execute(update(meta).where(meta.c.key == key).values(value=str(value)))
    return value


_READ_COUNTER = select(meta.c.value).where(meta.c.key == bindparam("key"))


async def read_counter(conn: AsyncConnection, key: str) -> int:
    """A counter's value now (0 when it was never raised); one primary-key read."""
    value = (await conn.execute(_READ_COUNTER, {"key": key})).scalar()
    return int(value) if value is not None else 0
