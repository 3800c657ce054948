"""Monthly counters kept at accept time, for what no other record keeps (``meta`` rows).

The monthly indicators (``mssante indicators``) come from proofs and traces, except the
count of messages by ``X-MSS-CODECDA`` code: the header itself is stored only inside the
encrypted body, so the accept path adds one to ``month:<YYYY-MM>:codecda:<code>`` in the
transaction that stores the message. A document type code counted per month, with no link
to a message or a person, is not patient data.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import insert_or_ignore
from storage.schema import meta

PREFIX = "month:"


def key(month: str, name: str, value: str) -> str:
    return f"{PREFIX}{month}:{name}:{value}"[:64]


def month_of(when: datetime) -> str:
    return when.strftime("%Y-%m")


async def add(conn: AsyncConnection, month: str, name: str, counts: Counter[str]) -> None:
    """Adds ``counts`` to the month's counters ``name`` (one locked update per value;
    PostgreSQL row locks and SQLite's write lock keep concurrent adds exact)."""
    for value, n in sorted(counts.items()):
        k = key(month, name, value)
        await conn.execute(insert_or_ignore(conn, meta, ["key"]).values(key=k, value="0"))
        current = (await conn.execute(
            select(meta.c.value).where(meta.c.key == k).with_for_update())).scalar_one()
        await conn.execute(update(meta).where(meta.c.key == k)
                           .values(value=str(int(current) + n)))


async def read(conn: AsyncConnection, month: str, name: str) -> dict[str, int]:
    """The month's counters ``name``: value → count."""
    prefix = key(month, name, "")
    rows = (await conn.execute(select(meta.c.key, meta.c.value)
                               .where(meta.c.key.like(prefix + "%")))).all()
    return {str(k)[len(prefix):]: int(v) for k, v in rows}
