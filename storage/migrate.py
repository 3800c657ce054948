"""Schema migrations, run programmatically at start-up on either engine.

Alembic is configured in code (``script_location`` is this package's ``migrations``
directory), so no ``alembic.ini`` has to exist on the machine. Several gateway nodes may
start at once against one PostgreSQL: a transaction-scoped advisory lock makes them
migrate one after the other, and each finds the schema already at head.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import erase_free_pages, serialize
from storage.keys import Keyring

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Any = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations, bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


CLEAR_METADATA_REVISIONS = frozenset({"0001", "0002"})
"""Revisions whose message rows held header-derived text in clear (sealed by 0003)."""


async def migrate(engine: AsyncEngine, keyring: Callable[[], Keyring] | None = None) -> None:
    """Brings the database schema to the newest revision; a no-op when already there.

    ``keyring`` loads the key file, for the migrations that encrypt existing data (0003).
    After sealing what was stored in clear, the database file is rewritten so that no
    free page still holds the old text.
    """
    before = await current_revision(engine)
    async with engine.begin() as conn:
        await serialize(conn, "mssante-migrate")

        def upgrade(sync_conn: Any) -> None:
            cfg = alembic_config(sync_conn)
            if keyring is not None:
                cfg.attributes["keyring"] = keyring
            command.upgrade(cfg, "head")

        await conn.run_sync(upgrade)
    if before in CLEAR_METADATA_REVISIONS:
        await erase_free_pages(engine)
