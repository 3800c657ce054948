"""Revision 0006 on both engines: messages filed before it get their internal date as
save date (RFC 8514 SAVEDATE), new rows their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import select

import config
from storage.engine import create_engine
from storage.migrate import alembic_config, migrate
from storage.schema import accounts, folder_messages, folders, messages


async def test_0006_backfills_save_dates(db_settings: config.Settings) -> None:
    engine = create_engine(db_settings)
    when = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            def to_0005(sync_conn: Any) -> None:
                command.upgrade(alembic_config(sync_conn), "0005")

            await conn.run_sync(to_0005)
            account = (await conn.execute(accounts.insert().values(
                address="a@mssante.test", type="PER", created_at=when, updated_at=when,
            ))).inserted_primary_key[0]
            folder = (await conn.execute(folders.insert().values(
                account_id=account, name="INBOX", uidvalidity=1, created_at=when,
            ))).inserted_primary_key[0]
            message = (await conn.execute(messages.insert().values(
                content_sha256="0" * 64, size=10, header_size=5, internal_date=when,
                received_at=when,
            ))).inserted_primary_key[0]
            await conn.execute(folder_messages.insert().values(
                folder_id=folder, message_id=message, uid=1, modseq=1, flags="",
                internal_date=when))
        await migrate(engine)
        async with engine.connect() as conn:
            saved = (await conn.execute(select(folder_messages.c.saved_at))).scalar_one()
        assert saved == when
    finally:
        await engine.dispose()
