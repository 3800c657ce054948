"""METADATA (RFC 5464): server and mailbox annotations, values sealed at rest.

Entries live under ``/private`` (the user's own) or ``/shared`` (everyone who may see the
mailbox); the server's own ``/shared`` entries (``/shared/comment``, ``/shared/admin``) are
the operator's: read as NIL here and not writable over IMAP (``NO [NOPERM]``). Rights
on a mailbox (RFC 5464 §3.3 with RFC 4314): reading needs ``l`` for /private and ``r``
for /shared, writing ``l`` for /private and ``w`` for /shared.

Limits (``[imap] metadata_max_size``, ``metadata_max_entries``): a value over the size is
refused with ``NO [METADATA MAXSIZE n]``, more entries than allowed on one mailbox (or
the server) with ``NO [METADATA TOOMANY]``; SETMETADATA is all or nothing. GETMETADATA
answers every entry asked for (NIL when it has no value), with the ones below it to the
DEPTH asked, and leaves out values longer than MAXSIZE, saying the longest in
``OK [METADATA LONGENTRIES n]`` (§4.2.1).
"""

from __future__ import annotations

from imap.commands import AUTHENTICATED, register
from imap.commands.mailboxes import require_access
from imap.protocol import ImapRefusal, ResponseCode, encode_mailbox, encode_string
from imap.protocol import ext_commands as x
from imap.session import Done, Session
from imap.shared import Access
from mailstore.store import TooManyEntries


def _private(name: str) -> bool:
    return name.startswith("/private/")


def _value(data: bytes, utf8: bool) -> bytes:
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data  # RFC 5464 §5: value = nstring / literal8
    return encode_string(data, utf8=utf8)


async def _target(session: Session, mailbox: str | None) -> Access | None:
    return None if mailbox is None else await require_access(session, mailbox)


def _check_rights(access: Access | None, names: list[str], write: bool) -> None:
    if access is None:
        return
    needed = {("l" if _private(n) else ("w" if write else "r")) for n in names}
    for right in sorted(needed):
        access.require(right, "change annotations" if write else "read annotations")


@register(x.GetMetadata, AUTHENTICATED)
async def getmetadata(session: Session, cmd: x.GetMetadata) -> Done | None:
    identity = session.identity
    assert identity is not None
    access = await _target(session, cmd.mailbox)
    _check_rights(access, list(cmd.entries), write=False)
    folder_id = access.folder.id if access is not None else None
    store = session.ctx.store
    found: dict[str, bytes] = {}
    private = [n for n in cmd.entries if _private(n)]
    shared = [n for n in cmd.entries if not _private(n)]
    if private:
        found.update(await store.annotations(identity.account_id, folder_id, private,
                                             cmd.depth))
    if shared and access is not None:
        found.update(await store.annotations(access.owner_id, folder_id, shared, cmd.depth))
    parts: list[bytes] = []
    longest = 0
    for name in [*cmd.entries, *sorted(set(found) - set(cmd.entries))]:
        data = found.get(name)
        if data is not None and cmd.maxsize is not None and len(data) > cmd.maxsize:
            longest = max(longest, len(data))  # RFC 5464 §4.2.1: left out, told below
            continue
        parts.append(name.encode() + b" " + (b"NIL" if data is None
                                             else _value(data, session.utf8)))
    shown = b'""' if cmd.mailbox is None else encode_mailbox(cmd.mailbox, utf8=session.utf8)
    if parts:
        session.write(b"* METADATA " + shown + b" (" + b" ".join(parts) + b")\r\n")
    if longest:
        return Done("Completed", ResponseCode("METADATA", f"LONGENTRIES {longest}"))
    return None


@register(x.SetMetadata, AUTHENTICATED)
async def setmetadata(session: Session, cmd: x.SetMetadata) -> Done | None:
    identity = session.identity
    assert identity is not None
    imap = session.ctx.settings.imap
    access = await _target(session, cmd.mailbox)
    names = [n for n, _ in cmd.values]
    if access is None and any(not _private(n) for n in names):
        raise ImapRefusal("NO", "NOPERM", "The server's /shared entries are set by the "
                          "operator; use /private entries for your own notes")
    _check_rights(access, names, write=True)
    too_big = max((len(v) for _, v in cmd.values if v is not None), default=0)
    if too_big > imap.metadata_max_size:
        raise ImapRefusal("NO", ResponseCode("METADATA", f"MAXSIZE {imap.metadata_max_size}"),
                          f"An entry value of {too_big} octets exceeds the limit of "
                          f"{imap.metadata_max_size}; nothing was changed")
    folder_id = access.folder.id if access is not None else None
    by_account: dict[int, dict[str, bytes | None]] = {}
    for name, value in cmd.values:
        # /private: the user's own; /shared: kept with the mailbox's owner.
        owner = identity.account_id if _private(name) or access is None else access.owner_id
        by_account.setdefault(owner, {})[name] = value
    try:
        await session.ctx.store.set_annotations(folder_id, by_account,
                                                imap.metadata_max_entries)
    except TooManyEntries:
        raise ImapRefusal("NO", ResponseCode("METADATA", "TOOMANY"),
                          f"At most {imap.metadata_max_entries} entries per mailbox; "
                          "nothing was changed") from None
    return None


