"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT, ID (RFC 9051 §6.1, RFC 2971)."""

from __future__ import annotations

import logging

from imap.commands import ANY, register
from imap.protocol import bye, untagged_data
from imap.protocol import commands as c
from imap.session import Done, Session
from storage import traces

log = logging.getLogger("mssante.imap")

_ID_MAX_FIELDS = 30  # RFC 2971 §3.3: at most 30 field-value pairs
_ID_MAX_VALUE = 1024


@register(c.Capability, ANY)
async def capability(session: Session, cmd: c.Capability) -> Done | None:
    session.write(untagged_data("CAPABILITY", *session.capabilities()))
    return None


@register(c.Noop, ANY, always_sync=True)
async def noop(session: Session, cmd: c.Noop) -> Done | None:
    # The session reports changes to the selected mailbox before the tagged OK.
    return None


@register(c.Logout, ANY)
async def logout(session: Session, cmd: c.Logout) -> Done | None:
    # RFC 9051 §6.1.3: untagged BYE, then the tagged OK, then close.
    session.write(bye("Logging out"))
    session.write(f"{cmd.tag} OK LOGOUT completed\r\n".encode("ascii"))
    session.logout = True
    return None


@register(c.Id, ANY)
async def client_id(session: Session, cmd: c.Id) -> Done | None:
    """RFC 2971: log the client's identity with the session (one line) and answer ours."""
    params = dict((k[:64].lower(), (v or "")[:_ID_MAX_VALUE])
                  for k, v in (cmd.params or ())[:_ID_MAX_FIELDS])
    log.info("imap_client_id", extra=session.log_fields(client=params))
    db = session.ctx.db
    if db is not None and params:
        async with db.begin() as conn:
            await traces.record(conn, session_id=session.id, service="imap",
                                event="client_id", detail=params)
    session.write(untagged_data("ID", ["name", "mssante-gateway", "vendor", "mssante-gateway",
                                       "support-url", "https://" + session.ctx.settings.hostname
                                       + "/"]))
    return None
