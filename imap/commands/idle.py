"""IDLE (RFC 2177, RFC 9051 §6.3.13): push changes of the selected mailbox at once.

The session waits on the mailbox's change event (set by :class:`~mail.changes.ChangeHub`
after any commit touching the folder) and on the client's ``DONE``, whichever comes first,
so a change is on the wire within milliseconds of its commit.
"""

from __future__ import annotations

import asyncio
import contextlib

from imap.commands import AUTHENTICATED, register
from imap.protocol import ImapRefusal, continuation, untagged
from imap.protocol import commands as c
from imap.session import Done, Session
from imap.shared import idle_recheck

# RFC 2177 §3: clients re-issue IDLE at least every 29 minutes; a keep-alive OK every few
# minutes also keeps NAT tables open.
KEEPALIVE = 120.0


@register(c.Idle, AUTHENTICATED)
async def idle(session: Session, cmd: c.Idle) -> Done | None:
    session.write(continuation("idling"))
    if session.selected is not None:
        await session.report_changes(allow_expunge=True)
    await session.flush()
    line_task = asyncio.ensure_future(session.cmd_reader.read_line())
    deadline = asyncio.get_running_loop().time() + session.ctx.settings.imap.idle_timeout
    try:
        while True:
            sel = session.selected
            waiters: set[asyncio.Future[object]] = {line_task}  # type: ignore[arg-type]
            event_task = None
            if sel is not None:
                event_task = asyncio.ensure_future(sel.event.wait())
                waiters.add(event_task)  # type: ignore[arg-type]
            # Withdrawn access (revoked delegation, suspended account) ends what IDLE pushes.
            access = session.ctx.authenticator.access
            access_task = asyncio.ensure_future(access.changed().wait())
            waiters.add(access_task)  # type: ignore[arg-type]
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise ImapRefusal("BYE", None, "Autologout: IDLE for too long")
            done, _ = await asyncio.wait(waiters, timeout=min(KEEPALIVE, left),
                                         return_when=asyncio.FIRST_COMPLETED)
            if event_task is not None and not event_task.done():
                event_task.cancel()
            if not access_task.done():
                access_task.cancel()
            if line_task in done:
                line = line_task.result()
                if line is None:
                    raise ImapRefusal("BYE", None, "Connection closed during IDLE")
                if line.strip().upper() != b"DONE":
                    raise ImapRefusal("BAD", None, "Expected DONE to end IDLE")
                return None
            if session.closing:
                return None
            if session.access_version != access.version:
                await idle_recheck(session)
                sel = session.selected
            if sel is not None and sel.event.is_set():
                await session.report_changes(allow_expunge=True)
            elif not done:
                session.write(untagged("OK", "Still here"))
            await session.flush()
    finally:
        if not line_task.done():
            line_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await line_task
