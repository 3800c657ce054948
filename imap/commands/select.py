"""SELECT, EXAMINE, UNSELECT, CLOSE, CHECK and ENABLE (RFC 9051 §6.3.2-6.3.3, §6.4.1-6.4.2,
RFC 3691, RFC 5161, RFC 7162 CONDSTORE/QRESYNC)."""

from __future__ import annotations

from imap.commands import AUTHENTICATED, SELECTED, register
from imap.commands.mailboxes import require_access
from imap.protocol import (
    Atom,
    ImapRefusal,
    ResponseCode,
    SequenceSet,
    encode_mailbox,
    untagged,
    untagged_data,
)
from imap.protocol import commands as c
from imap.protocol.response import fetch_response
from imap.selected import SelectedMailbox, UidList, flags_announcement, flags_value
from imap.session import Done, Session
from mailstore.objectid import mailbox_id

_ENABLEABLE = ("CONDSTORE", "QRESYNC", "IMAP4REV2", "UTF8=ACCEPT")
# RFC 4314 §4: insert, expunge and the flag rights (\Seen, \Deleted, the others) are the
# ones that make a selection read-write; "l", "r", "p" and the mailbox rights do not.
WRITE_RIGHTS = "iestw"


@register(c.Enable, AUTHENTICATED)
async def enable(session: Session, cmd: c.Enable) -> Done | None:
    """RFC 5161: answer ENABLED with what was newly enabled (unknown names are ignored)."""
    newly = []
    for cap in cmd.capabilities:
        if cap in _ENABLEABLE and cap not in session.enabled:
            if cap in ("CONDSTORE", "QRESYNC"):
                session.enable_condstore()  # RFC 7162 §3.1: HIGHESTMODSEQ if selected
            session.enabled.add(cap)
            newly.append(cap)
            if cap == "QRESYNC":
                session.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3
    names = {"IMAP4REV2": "IMAP4rev2"}
    session.write(untagged_data("ENABLED", *[names.get(n, n) for n in newly]))
    return None


@register(c.Select, AUTHENTICATED)
async def select(session: Session, cmd: c.Select) -> Done | None:
    store = session.ctx.store
    if session.selected is not None:
        session.close_selected()
        # RFC 7162 §3.2.11 / RFC 9051 §7.1: the previous mailbox is closed.
        session.write(untagged("OK", "Previous mailbox closed", "CLOSED"))
    access = await require_access(session, cmd.mailbox)
    # RFC 4314 §4: SELECT and EXAMINE need "r".
    access.require("r", "read messages")
    folder = access.folder
    session.rights = access.rights
    # RFC 4314 §4: without a right that changes the mailbox, SELECT is read-only.
    readonly = cmd.readonly or not set(access.rights) & set(WRITE_RIGHTS)
    if cmd.qresync is not None and not session.qresync:
        raise ImapRefusal("BAD", None, "QRESYNC parameter needs ENABLE QRESYNC first")
    if cmd.condstore:
        session.enabled.add("CONDSTORE")  # RFC 7162 §3.1.8
    event = session.ctx.changes.watch(folder.id)
    info, entries = await store.snapshot(folder.id)
    uids = UidList(entries)
    # Taken now: the index may move on at the next await (claim_recent).
    distinct = {entry[1] for entry in entries.values()}
    first_unseen = None if session.rev2 else next(
        (i + 1 for i, entry in enumerate(entries.values()) if "\\Seen" not in entry[1]), None)
    top = uids[-1] if uids else 0
    if session.rev2:
        recent: set[int] = set()  # RFC 9051 §2.3.2: no \Recent in IMAP4rev2; none claimed
    else:
        # RFC 3501 §2.3.2: EXAMINE only looks; SELECT claims the recent UIDs for itself.
        floor = info.recent_uid if readonly else await store.claim_recent(folder.id, top)
        recent = set(uids[uids.first_at_or_above(floor + 1):])
    sel = SelectedMailbox(
        folder_id=folder.id, name=folder.name, uidvalidity=info.uidvalidity,
        readonly=readonly, uids=uids, modseq=info.highestmodseq, event=event,
        recent=recent, rights=access.rights,
    )
    session.selected = sel
    if session.rev2:
        # RFC 9051 §6.3.2: the server MUST send a LIST response with the mailbox name
        # (its canonical spelling, as LIST would show it).
        session.write(untagged_data("LIST", [], b"/", Atom(encode_mailbox(
            folder.name, utf8=True).decode("utf-8", "surrogateescape"))))
    sel.keywords = {f for flags in distinct for f in flags if not f.startswith("\\")}
    for line in flags_announcement(sel.keywords, access.rights, readonly):
        session.write(line)
    session.write(untagged_data(len(uids), "EXISTS"))
    if not session.rev2:
        session.write(untagged_data(len(sel.recent), "RECENT"))
        if first_unseen is not None:
            session.write(untagged("OK", "First unseen message",
                                   ResponseCode("UNSEEN", str(first_unseen))))
    session.write(untagged("OK", "UIDs valid", ResponseCode.uidvalidity(info.uidvalidity)))
    session.write(untagged("OK", "Predicted next UID", ResponseCode.uidnext(info.uidnext)))
    # RFC 7162 §3.1.2.1: always sent, and never 0 (the folder row starts at 1).
    session.write(untagged("OK", "Highest mod-sequence",
                           ResponseCode.highestmodseq(info.highestmodseq)))
    # RFC 8474 §4.1: the mailbox's MAILBOXID with every SELECT and EXAMINE.
    session.write(untagged("OK", "Mailbox id",
                           ResponseCode("MAILBOXID", f"({mailbox_id(info.uidvalidity)})")))
    if cmd.qresync is not None and cmd.qresync.uidvalidity == info.uidvalidity:
        await _qresync(session, sel, cmd.qresync)
    code = "READ-ONLY" if readonly else "READ-WRITE"
    return Done("Completed", code)


async def _qresync(session: Session, sel: SelectedMailbox, q: c.QResync) -> None:
    """RFC 7162 §3.2.5: VANISHED (EARLIER) then FETCH for everything changed since modseq."""
    store = session.ctx.store
    top = sel.uids[-1] if sel.uids else 0
    vanished = await store.vanished_since(sel.folder_id, q.modseq)
    if q.known_uids is not None:
        known_top = max(top, max((u for u in vanished), default=0))
        vanished = [u for u in vanished if q.known_uids.contains(u, known_top)]
    if vanished:
        session.write(untagged_data("VANISHED", Atom("(EARLIER)"),
                                    SequenceSet.from_ints(vanished)))
    ranges = sel.uids.ranges()
    rows = await store.index_rows(sel.folder_id, ranges, changed_since=q.modseq)
    for row in rows:
        seq = sel.seq_of(row.uid)
        if seq is None:
            continue
        session.write(fetch_response(seq, [
            ("UID", row.uid), ("FLAGS", flags_value(row.flags, row.uid in sel.recent)),
            ("MODSEQ", [row.modseq]),
        ]))


@register(c.Unselect, SELECTED)
async def unselect(session: Session, cmd: c.Unselect) -> Done | None:
    session.close_selected()  # RFC 3691: no expunge
    return None


@register(c.Close, SELECTED)
async def close(session: Session, cmd: c.Close) -> Done | None:
    """RFC 9051 §6.4.1: silently expunge \\Deleted messages unless read-only."""
    sel = session.selected
    assert sel is not None
    if not sel.readonly and "e" in session.rights:  # RFC 4314 §4: no "e", no expunge
        rows = await session.ctx.store.index_rows(sel.folder_id, sel.uids.ranges())
        deleted = [r.uid for r in rows if "\\Deleted" in r.flags]
        if deleted:
            await session.ctx.store.expunge(sel.folder_id, deleted)
    session.close_selected()
    return None


@register(c.Check, SELECTED, always_sync=True)
async def check(session: Session, cmd: c.Check) -> Done | None:
    return None  # every change is already durable; changes are reported like NOOP
