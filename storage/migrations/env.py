"""Alembic environment, driven from code (``storage.migrate``), never from an alembic.ini.

The caller passes an open synchronous connection (inside an async engine's ``run_sync``)
in ``config.attributes["connection"]``; migrations run in the caller's transaction.
"""

from __future__ import annotations

from alembic import context

from storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "storage migrations run through storage.migrate.migrate(engine), not the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE is limited
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
