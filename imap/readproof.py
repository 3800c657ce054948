"""The IMAP side of read proofs (:mod:`mailstore.readproof`): who reads, through which
session, and which bodies the session downloaded.

A FETCH of a body without PEEK proves a reading observed as ``body-fetch``; a STORE setting
\\Seen proves one observed as ``seen-flag``, which earns a ``displayed`` receipt only for the
messages this session had downloaded first (``BODY.PEEK[]``, ``BODY.PEEK[TEXT]``, a part or
``BINARY.PEEK[...]``): a client showing its offline copy, as Thunderbird does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from imap.protocol.fetch_items import FetchAttr
from mailstore.readproof import BODY_FETCH, SEEN_FLAG, Reader, ReadProofs

if TYPE_CHECKING:
    from imap.session import Session

MAX_DOWNLOADED = 100_000
"""(folder, UID) pairs a session remembers as downloaded; beyond, it forgets them all (a
\\Seen then earns no receipt: a receipt too few rather than one not earned)."""


def downloads_body(item: FetchAttr) -> bool:
    """A PEEK fetch of the message's text, of a part, or of the whole message (not of a
    header, and not a preview: a partial fetch from offset 0)."""
    if not item.peek or item.name not in ("BODY[]", "BINARY[]"):
        return False
    section = item.section
    if section is not None and section.text not in (None, "TEXT"):
        return False
    return item.partial is None or item.partial[0] > 0


def note_downloads(session: Session, folder_id: int, uids: Sequence[int]) -> None:
    held = session.downloaded
    if len(held) + len(uids) > MAX_DOWNLOADED:
        held.clear()
    held.update((folder_id, u) for u in uids)


def _proofs(session: Session) -> ReadProofs | None:
    ctx = session.ctx
    if ctx.db is None:
        return None
    return ReadProofs(ctx.db, ctx.pipeline, ctx.settings, ctx.trust)


def _reader(session: Session) -> Reader | None:
    identity = session.identity
    if identity is None:
        return None
    ssl_object = session.ssl_object()
    return Reader(identity.account_id, identity.address, session.id, auth=identity.method,
                  tls=ssl_object.version() if ssl_object is not None else None)


async def record_reads(session: Session, folder_id: int, uids: Sequence[int],
                       via: str) -> int:
    """Records the first reading of each message at ``uids`` (``fetch`` or ``store``);
    returns how many were new."""
    proofs, reader = _proofs(session), _reader(session)
    if proofs is None or reader is None or not uids:
        return 0
    if via == "store":
        shown = [u for u in uids if (folder_id, u) in session.downloaded]
        return await proofs.record(reader, folder_id, uids, SEEN_FLAG, displayed=shown)
    return await proofs.record(reader, folder_id, uids, BODY_FETCH)
