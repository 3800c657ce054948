"""Schema migrations, run programmatically at start-up on either engine.

Alembic is configured in code (``script_location`` is this package's ``migrations``
directory), so no ``alembic.ini`` has to exist on the machine. Several gateway nodes may
start at once against one PostgreSQL: a transaction-scoped advisory lock makes them
migrate one after the other, and each finds the schema already at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import serialize

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


async def migrate(engine: AsyncEngine) -> None:
    """Brings the database schema to the newest revision; a no-op when already there."""
    async with engine.begin() as conn:
        await serialize(conn, "mssante-migrate")
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
