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

from sqlalchemy.ext.asyncio import AsyncConnection

from storage.meta import next_counter, read_counter

KEY = "directory_version"


async def bump(conn: AsyncConnection) -> int:
    """Raises the directory version inside the caller's transaction; returns the new value."""
    return await next_counter(conn, KEY)


async def current(conn: AsyncConnection) -> int:
    """The directory version now (0 when nothing was ever changed)."""
    return await read_counter(conn, KEY)
