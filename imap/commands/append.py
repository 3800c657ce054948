"""APPEND (RFC 9051 §6.3.12, RFC 4315 APPENDUID, RFC 3502 MULTIAPPEND, RFC 7889 APPENDLIMIT).

The message goes through the same accept path as mail from SMTP (docs/architecture.md §7: front-ends
never write the store): encrypted once, its IMAP view precomputed, durable before the OK.
It is not a delivery, so no delivery proof is recorded.
"""

from __future__ import annotations

import asyncio

from imap.commands import AUTHENTICATED, register
from imap.commands.catenate import resolve_catenate
from imap.commands.mailboxes import require_access
from imap.commands.store import normalise_flags
from imap.protocol import ImapRefusal, ResponseCode, SequenceSet, SpooledLiteral
from imap.protocol import commands as c
from imap.session import Done, Session
from imap.shared import Access
from mail.pipeline import Delivery, LocalTarget


@register(c.Append, AUTHENTICATED)
async def append(session: Session, cmd: c.Append) -> Done | None:
    identity = session.identity
    assert identity is not None
    ctx = session.ctx
    if ctx.pipeline is None:
        raise ImapRefusal("NO", "UNAVAILABLE", "Message storage is not available, retry later")
    access = await require_access(session, cmd.mailbox, missing="TRYCREATE")
    access.require("i", "append messages")  # RFC 4314 §4: APPEND needs "i"
    cmd = await resolve_catenate(session, cmd)  # RFC 4469
    limit = ctx.settings.imap.max_literal_size
    total = 0
    for msg in cmd.messages:
        if len(msg.data) > limit:
            raise ImapRefusal("NO", "TOOBIG", f"Message of {len(msg.data)} octets exceeds the "
                              f"limit of {limit} octets")
        if not msg.data:
            raise ImapRefusal("NO", "CANNOT", "An empty message cannot be appended")
        total += len(msg.data)
    quota = ctx.settings.imap.quota_storage_mb * 1024 * 1024
    used = await ctx.store.storage_used(access.owner_id)  # the owner's quota
    if used + total > quota:
        # RFC 9208 §4.3: OVERQUOTA names the refusal.
        raise ImapRefusal("NO", "OVERQUOTA", f"Mailbox storage quota of "
                          f"{ctx.settings.imap.quota_storage_mb} MiB would be exceeded")
    if any(isinstance(msg.data, SpooledLiteral) for msg in cmd.messages):
        # Read back whole to be parsed and stored: at most a few at once, process-wide.
        async with ctx.append_slots:
            raws = [await _message_bytes(msg) for msg in cmd.messages]
            return await _store(session, cmd, access, raws)
    return await _store(session, cmd, access, [await _message_bytes(m) for m in cmd.messages])


async def _message_bytes(msg: c.AppendMessage) -> bytes:
    """The octets of one message, from the reader's encrypted spool when it was large."""
    data = msg.data
    if isinstance(data, SpooledLiteral):
        return await asyncio.to_thread(data.read)
    return data


async def _store(
    session: Session, cmd: c.Append, access: Access, raws: list[bytes]
) -> Done:
    identity = session.identity
    assert identity is not None and session.ctx.pipeline is not None
    folder = access.folder
    deliveries = []
    for msg, raw in zip(cmd.messages, raws, strict=True):
        # RFC 4314 §4: flags the rights do not allow are dropped, not refused.
        flags = tuple(f for f in normalise_flags(msg.flags)
                      if {"\\Seen": "s", "\\Deleted": "t"}.get(f, "w") in access.rights)
        deliveries.append(Delivery(
            raw=raw, sender=identity.address,
            local=[LocalTarget(access.owner, access.owner_id, folder.id, flags)],
            record_delivery=False, internal_date=msg.internal_date,
        ))
    # RFC 3502 §6: the messages of one MULTIAPPEND are stored all together or not at all.
    stored = await session.ctx.pipeline.submit_many(deliveries)
    uids = [s.uids[folder.id] for s in stored]
    return Done("Completed", ResponseCode.appenduid(folder.uidvalidity,
                                                    SequenceSet.from_ints(uids)))
