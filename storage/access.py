"""The access version: one counter raised by every change of who may reach what.

Why: an open IMAP or SMTP session decided at login (and at SELECT) what its user may
reach. When a delegation is revoked, a folder ACL changed, an application password revoked
or an account suspended or closed, those decisions must be taken again at once in every
session, on every node, whoever made the change (the portal, an IMAP ``SETACL``, or
``mssante`` run as another process on the same database). Each such write raises this
counter in its own transaction; running gateways read it (one primary-key read of the
``meta`` row, about once a second) and re-check the sessions when it moved. Nothing else
has to be broadcast, so the same mechanism works on SQLite and across PostgreSQL nodes.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from storage.meta import next_counter, read_counter

KEY = "access_version"


async def bump(conn: AsyncConnection) -> int:
    """Raises the access version inside the caller's transaction; returns the new value."""
    return await next_counter(conn, KEY)


async def current(conn: AsyncConnection) -> int:
    """The access version now (0 when nothing was ever changed)."""
    return await read_counter(conn, KEY)
