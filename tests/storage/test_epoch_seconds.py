"""``storage.types.epoch_seconds`` gives what Python's ``int(t.timestamp())`` gives, on both
engines (the webmail's date order and its page cursors rest on it)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, MetaData, Table, func, select

from storage.database import Database
from storage.types import UTCDateTime, epoch_seconds

INSTANTS = [
    datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 30, 10, 0, 0, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1951, 3, 4, 5, 6, 7, tzinfo=UTC),
    datetime(2049, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
    datetime(2107, 2, 3, 4, 5, 6, tzinfo=UTC),
]


async def test_epoch_seconds_matches_python(database: Database) -> None:
    table = Table("epoch_probe", MetaData(), Column("at", UTCDateTime, nullable=True),
                  Column("fallback", UTCDateTime, nullable=False))
    fallback = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    async with database.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(table.insert(), [{"at": t, "fallback": fallback}
                                            for t in [*INSTANTS, None]])
        got = (await conn.execute(
            select(table.c.at, epoch_seconds(func.coalesce(table.c.at, table.c.fallback))))
        ).all()
        await conn.run_sync(table.metadata.drop_all)
    expected = [int((t or fallback).timestamp()) for t in [*INSTANTS, None]]
    assert sorted(seconds for _at, seconds in got) == sorted(expected)
    assert all(type(seconds) is int for _at, seconds in got)
