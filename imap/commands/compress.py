"""COMPRESS (RFC 4978): DEFLATE on both directions of an authenticated session.

RFC 4978 §5 adds COMPRESS to ``command-auth``: before authentication it is not a valid
command (``BAD``, as for every authenticated-state command; the capability is only
announced after login, so nothing about the session leaks compressed before it). A
second COMPRESS gets ``NO [COMPRESSIONACTIVE]`` (§3). The layer itself is
:mod:`imap.protocol.deflate`.
"""

from __future__ import annotations

import logging

from imap.commands import AUTHENTICATED, register
from imap.protocol import ImapRefusal, tagged
from imap.protocol import ext_commands as x
from imap.protocol.deflate import DeflateTransport, start_deflate
from imap.session import Done, Session

log = logging.getLogger("mssante.imap")


def compression_active(session: Session) -> bool:
    return isinstance(session.writer.transport, DeflateTransport)


@register(x.Compress, AUTHENTICATED)
async def compress(session: Session, cmd: x.Compress) -> Done | None:
    if compression_active(session):
        raise ImapRefusal("NO", "COMPRESSIONACTIVE", "DEFLATE compression is already active")
    # RFC 4978 §3: the tagged OK is the last thing sent in clear; compression starts
    # right after its CRLF, in both directions.
    session.write(tagged(cmd.tag, "OK", "DEFLATE active"))
    await session.flush()
    session.writer = start_deflate(session.reader, session.writer)
    log.info("imap_compress", extra=session.log_fields(mechanism=cmd.mechanism))
    return Done(silent=True)
