"""CATENATE (RFC 4469, without URLAUTH) and REPLACE (RFC 8508).

CATENATE builds an APPEND message from ``TEXT`` literals and ``URL`` parts, each URL
naming a message (or a section of one, or a partial range of that) in a mailbox the user
may read (RFC 4314 ``r``), addressed as ``/mailbox;UIDVALIDITY=v/;UID=n/;SECTION=s`` or
with ``imap://user@host`` of this server in front (:mod:`imap.protocol.imapurl`). The
parts are put together before the APPEND checks (size limit, quota), so a CATENATE is
stored exactly as the same octets sent whole would be. A URL that cannot be resolved
refuses the whole command with ``NO [BADURL url]`` (RFC 4469 §5); a result over the
literal limit, ``NO [TOOBIG]``.

REPLACE appends the new version of a message and expunges the old one from the selected
mailbox (RFC 8508 §3): ``* OK [APPENDUID …]`` first, then the EXPUNGE, then the tagged
OK; if the APPEND fails the old message stays.
"""

from __future__ import annotations

import asyncio

from imap.commands import SELECTED, register
from imap.protocol import ImapRefusal, ParseError, mutf7_decode, parse_command, untagged
from imap.protocol import commands as c
from imap.protocol import ext_commands as x
from imap.protocol.imapurl import ImapUrl, parse_imap_url
from imap.protocol.spool import SpooledLiteral
from imap.session import Done, Session
from mail import sections


def _badurl(url: str, why: str) -> ImapRefusal:
    # RFC 4469 §5: url-resp-text is any TEXT-CHAR but "]".
    shown = "".join(ch for ch in url if " " <= ch < "\x7f" and ch != "]")[:300]
    return ImapRefusal("NO", f"BADURL {shown or '-'}", f"CATENATE URL refused: {why}")


async def _url_bytes(session: Session, url: str) -> bytes:
    from imap.commands.mailboxes import require_access

    try:
        ref: ImapUrl = parse_imap_url(url)
    except ValueError as exc:
        raise _badurl(url, str(exc)) from None
    identity = session.identity
    assert identity is not None
    if ref.host is not None and ref.host != session.ctx.settings.hostname.lower():
        raise _badurl(url, "it names another server")
    if ref.user is not None and ref.user.lower() != identity.address.lower():
        raise _badurl(url, "it names another user")
    try:
        name = ref.mailbox.decode("utf-8") if session.utf8 else mutf7_decode(ref.mailbox)
    except (UnicodeDecodeError, ValueError):
        raise _badurl(url, "the mailbox name is not valid") from None
    try:
        access = await require_access(session, name)
    except ImapRefusal:
        raise _badurl(url, "no such mailbox") from None
    if "r" not in access.rights:  # RFC 4314 §4: reading needs "r"
        raise _badurl(url, "you may not read that mailbox")
    if ref.uidvalidity is not None and ref.uidvalidity != access.folder.uidvalidity:
        raise _badurl(url, "UIDVALIDITY differs (the mailbox was re-created)")
    spec = None
    if ref.section is not None:
        try:
            fetch = parse_command(b"u FETCH 1 BODY.PEEK[" + ref.section + b"]")
        except ParseError:
            raise _badurl(url, "the SECTION is not valid") from None
        assert isinstance(fetch, c.Fetch) and fetch.items[0].section is not None
        sec = fetch.items[0].section
        spec = sections.Section(sec.part, sec.text or "", sec.fields)
    store = session.ctx.store
    async with store.body_reader() as reader:
        rows = await reader.fetch_rows(access.folder.id, [(ref.uid, ref.uid)], full=True)
        if not rows or rows[0].view is None or rows[0].blob_id is None:
            raise _badurl(url, "no such message (or its body is past retention)")
        row, view, blob = rows[0], rows[0].view, rows[0].blob_id

        async def read(start: int, end: int) -> bytes:
            return await reader.read(blob, start, max(0, end - start))

        if spec is None:
            data = await read(0, view.size)
            if ref.partial is not None:
                data = sections.partial_bytes(data, *ref.partial)
        else:
            if spec.part and ".".join(map(str, spec.part)) not in view.parts:
                raise _badurl(url, "no such section")
            data = await sections.aread_section(view, spec, read, ref.partial)
    del row
    return data


async def resolve_catenate(session: Session, cmd: c.Append) -> c.Append:
    """``cmd`` with each CATENATE message put together (the others as they are)."""
    if not any(isinstance(m, x.CatenateMessage) for m in cmd.messages):
        return cmd
    limit = session.ctx.settings.imap.max_literal_size
    messages: list[c.AppendMessage] = []
    for msg in cmd.messages:
        if not isinstance(msg, x.CatenateMessage):
            messages.append(msg)
            continue
        pieces: list[bytes] = []
        size = 0
        for part in msg.parts:
            if part.url is not None:
                data = await _url_bytes(session, part.url)
            elif isinstance(part.text, SpooledLiteral):
                data = await asyncio.to_thread(part.text.read)
            else:
                data = part.text or b""
            size += len(data)
            if size > limit:
                raise ImapRefusal("NO", "TOOBIG", f"The CATENATE result exceeds the limit of "
                                  f"{limit} octets")
            pieces.append(data)
        messages.append(c.AppendMessage(msg.flags, msg.internal_date, b"".join(pieces),
                                        msg.binary))
    return c.Append(cmd.tag, cmd.mailbox, tuple(messages))


@register(x.Replace, SELECTED)
async def replace(session: Session, cmd: x.Replace) -> Done | None:
    """RFC 8508 §3.3: APPEND to ``mailbox`` then expunge message ``number`` here."""
    from imap.commands.append import append

    sel = session.selected
    assert sel is not None and cmd.message is not None
    if sel.readonly:
        raise ImapRefusal("NO", "READ-ONLY", "The mailbox is selected read-only (EXAMINE, "
                          "or your rights on it allow no change)")
    missing = "".join(r for r in "te" if r not in session.rights)
    if missing:
        # RFC 8508 §3.3 with RFC 4314 §4: replacing removes the old message, "t" and "e".
        raise ImapRefusal("NO", "NOPERM", f"You may not replace messages of {sel.name!r}: "
                          "the rights to delete (t) and expunge (e) are needed")
    uids = sel.resolve(cmd.sequence_set, cmd.uid)
    if not uids:
        if cmd.uid:
            raise ImapRefusal("NO", "NONEXISTENT", f"No message with UID {cmd.number}")
        raise ImapRefusal("BAD", None, f"No message number {cmd.number} in the mailbox")
    done = await append(session, c.Append(cmd.tag, cmd.mailbox, (cmd.message,)))
    # RFC 8508 §3.3: the APPENDUID goes out untagged, before the EXPUNGE.
    session.write(untagged("OK", "Replacement message ready",
                           done.code if isinstance(done, Done) else None))
    await session.ctx.store.expunge(sel.folder_id, uids)
    for line in sel.take_expunged(uids, session.qresync):
        session.write(line)
    return None
