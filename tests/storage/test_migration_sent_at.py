"""Revision 0009: the sent instant of messages stored before it is read from their sealed
view (which needs the key file); a message without a readable Date field keeps NULL."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import select, update

from storage.engine import create_engine
from storage.keys import load_or_create_keyring
from storage.migrate import alembic_config, migrate
from storage.schema import messages
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway


def _submit(gw: RunningGateway, to: str, date: str | None) -> None:
    head = f"From: <{gw.demo_address}>\r\nTo: <{to}>\r\nSubject: migration\r\n"
    if date is not None:
        head += f"Date: {date}\r\n"
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                          timeout=30) as smtp:
        smtp.login(gw.demo_address, gw.demo_password)
        smtp.sendmail(gw.demo_address, [to], (head + "\r\nBonjour.\r\n").encode())


async def test_0009_fills_sent_at_from_the_sealed_views(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        bob, _ = await gw.add_mailbox("bob")
        await asyncio.to_thread(_submit, gw, bob, "Mon, 18 Mar 2024 10:00:00 +0100")
        await asyncio.to_thread(_submit, gw, bob, "not a date")
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            stored = (await conn.execute(select(messages.c.sent_at)
                                         .order_by(messages.c.id))).scalars().all()
            assert stored[-2:] == [datetime(2024, 3, 18, 9, 0, tzinfo=UTC), None]
            await conn.execute(update(messages).values(sent_at=None))

            def to_0008(sync_conn: Any) -> None:
                command.downgrade(alembic_config(sync_conn), "0008")

            await conn.run_sync(to_0008)
        await migrate(engine, lambda: load_or_create_keyring(settings.key_file,
                                                             may_create=False))
        async with engine.connect() as conn:
            filled = (await conn.execute(select(messages.c.sent_at)
                                         .order_by(messages.c.id))).scalars().all()
        assert filled == stored
    finally:
        await engine.dispose()
