"""Revision 0010 on both engines, on a database created at 0008: accounts that never chose
a read-notice policy (``ask`` from the old default, row never changed) move to ``always``;
an ``ask`` on a row changed since its creation (possibly chosen) stays, and so do the
other policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import select

import config
from storage.engine import create_engine
from storage.migrate import alembic_config, migrate
from storage.schema import accounts


async def test_0010_moves_only_untouched_ask_to_always(db_settings: config.Settings) -> None:
    engine = create_engine(db_settings)
    when = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    later = when + timedelta(days=3)
    rows = {  # address: (policy at 0008, updated_at, policy expected after 0010)
        "default.ask@mssante.test": ("ask", when, "always"),
        "changed.ask@mssante.test": ("ask", later, "ask"),
        "never@mssante.test": ("never", when, "never"),
        "changed.never@mssante.test": ("never", later, "never"),
        "always@mssante.test": ("always", when, "always"),
    }
    try:
        async with engine.begin() as conn:
            def to_0008(sync_conn: Any) -> None:
                command.upgrade(alembic_config(sync_conn), "0008")

            await conn.run_sync(to_0008)
            for address, (policy, updated, _after) in rows.items():
                await conn.execute(accounts.insert().values(
                    address=address, type="PER", mdn_policy=policy, created_at=when,
                    updated_at=updated))
        await migrate(engine)
        async with engine.connect() as conn:
            found = dict((await conn.execute(
                select(accounts.c.address, accounts.c.mdn_policy))).all())
        assert found == {address: after for address, (_p, _u, after) in rows.items()}
    finally:
        await engine.dispose()
