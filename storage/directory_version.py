"""The directory version: one counter raised by every change of what the directory shows.

Why: local mailboxes are published to LDAP by the running gateway, but accounts are also
created, suspended, hidden or given application passwords by ``mssante`` run as another
process (or by another node). Each such write raises this counter in its own transaction;
the gateway's directory service reads it (one primary-key read of the ``meta`` row, about
once a second) and re-publishes the accounts changed since its last pass, so a new mailbox
can be found and can bind within seconds instead of at the next full reconciliation.

Separate from :mod:`storage.access` on purpose: that counter makes every open session
re-check its rights, which a new mailbox or a new display name does not call for.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.meta import next_counter
from storage.schema import meta

KEY = "directory_version"

_READ = select(meta.c.value).where(meta.c.key == bindparam("key"))


async def bump(conn: AsyncConnection) -> int:
    """Raises the directory version inside the caller's transaction; returns the new value."""
    return await next_counter(conn, KEY)


async def current(conn: AsyncConnection) -> int:
    """The directory version now (0 when nothing was ever changed)."""
    value = (await conn.execute(_READ, {"key": KEY})).scalar()
    return int(value) if value is not None else 0
