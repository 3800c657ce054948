"""STORE, UID STORE, EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.6, RFC 4315 §2.1,
RFC 7162 §3.1.3 UNCHANGEDSINCE)."""

from __future__ import annotations

from imap.commands import SELECTED, register
from imap.protocol import ImapRefusal, ResponseCode, SequenceSet, fetch_response
from imap.protocol import commands as c
from imap.protocol.response import Value
from imap.readproof import record_reads
from imap.selected import flags_value, uid_ranges
from imap.session import Done, Session
from imap.shared import RIGHT_NAMES
from mailstore.store import MessageRow

_SYSTEM = {"\\answered": "\\Answered", "\\flagged": "\\Flagged", "\\deleted": "\\Deleted",
           "\\seen": "\\Seen", "\\draft": "\\Draft"}


def normalise_flags(flags: tuple[str, ...]) -> tuple[str, ...]:
    """System flags in their canonical spelling; \\Recent cannot be stored (RFC 9051 §2.3.2)."""
    out = []
    for f in flags:
        if f.startswith("\\"):
            canon = _SYSTEM.get(f.lower())
            if canon is None:
                if f.lower() == "\\recent":
                    continue
                raise ImapRefusal("BAD", None, f"Flag {f[:40]} cannot be stored")
            out.append(canon)
        else:
            out.append(f)
    return tuple(dict.fromkeys(out))


def _needed_rights(flags: tuple[str, ...]) -> str:
    """RFC 4314 §4: STORE needs "s" for \\Seen, "t" for \\Deleted, "w" for any other flag."""
    needed = {"s" if f == "\\Seen" else "t" if f == "\\Deleted" else "w" for f in flags}
    return "".join(r for r in "stw" if r in needed)


def _noperm(session: Session, missing: str, action: str) -> ImapRefusal:
    sel = session.selected
    name = sel.name if sel is not None else ""
    names = ", ".join(RIGHT_NAMES.get(r, r) for r in missing)
    return ImapRefusal("NO", "NOPERM", f"You may not {action} in {name!r}: the right to "
                       f"{names} is not granted to you")


def _readonly_refusal() -> ImapRefusal:
    return ImapRefusal("NO", "READ-ONLY", "The mailbox is selected read-only (EXAMINE, or "
                       "your rights on it allow no change)")


@register(c.Store, SELECTED)
async def store(session: Session, cmd: c.Store) -> Done | None:
    sel = session.selected
    assert sel is not None
    if sel.readonly:
        raise _readonly_refusal()
    flags = normalise_flags(cmd.flags)
    if cmd.mode != "replace":
        missing = "".join(r for r in _needed_rights(flags) if r not in session.rights)
        if missing:
            raise _noperm(session, missing, "change these flags")
    uids = sel.resolve(cmd.sequence_set, cmd.uid)
    if cmd.unchangedsince is not None:
        session.enable_condstore()  # RFC 7162 §3.1.3
    unchanged: list[int] = []
    seen: list[int] = []

    def compute(uid: int, modseq: int, current: tuple[str, ...]) -> tuple[str, ...] | None:
        # Runs inside the write transaction, on the flags as they are (see change_flags).
        if cmd.unchangedsince is not None and modseq > cmd.unchangedsince:
            unchanged.append(uid)  # RFC 7162 §3.1.3
            return None
        now = set(current)
        if cmd.mode == "add":
            new = now | set(flags)
        elif cmd.mode == "remove":
            new = now - set(flags)
        else:
            new = set(flags)
            # A replace (FLAGS) needs the rights of every flag it would add or clear.
            missing = "".join(r for r in _needed_rights(tuple(new ^ now))
                              if r not in session.rights)
            if missing:
                raise _noperm(session, missing, "change these flags")
        if "\\Seen" in new and "\\Seen" not in now:
            seen.append(uid)
        return tuple(sorted(new))

    known = [u for u in uids if sel.seq_of(u) is not None]
    modseq, state = (await session.ctx.store.change_flags(sel.folder_id, known, compute)
                     if known else (0, {}))
    changes = {uid for uid, (m, _) in state.items() if modseq and m == modseq}
    for uid in changes:
        sel.own_changes[uid] = modseq
    modified = sorted(u if cmd.uid else sel.seq_of(u) or 0 for u in unchanged)
    newly_seen = [u for u in seen if u in changes]
    if newly_seen:
        await record_reads(session, sel.folder_id, newly_seen, "store")
    rows = [MessageRow(uid, *state[uid]) for uid in known if uid in state]
    for line in sel.keyword_news(row.flags for row in rows):
        session.write(line)  # RFC 3501 §7.2.6: before any FETCH showing the new keyword
    report_all = not cmd.silent
    for row in rows:
        if (cmd.unchangedsince is not None and row.modseq > cmd.unchangedsince
                and row.uid not in changes):
            continue
        # RFC 7162 §3.1.3: with .SILENT, a CONDSTORE client still learns the new MODSEQ.
        if not report_all and not (session.condstore and row.uid in changes):
            continue
        seq = sel.seq_of(row.uid)
        assert seq is not None
        items: list[tuple[str, Value]] = []
        if cmd.uid:
            items.append(("UID", row.uid))
        if report_all:
            items.append(("FLAGS", flags_value(row.flags, row.uid in sel.recent)))
        if session.condstore:
            items.append(("MODSEQ", [row.modseq]))
        session.write(fetch_response(seq, items))
    if modified:
        return Done("Completed, some messages changed since",
                    ResponseCode.modified(SequenceSet.from_ints(modified)))
    return None


@register(c.Expunge, SELECTED)
async def expunge(session: Session, cmd: c.Expunge) -> Done | None:
    sel = session.selected
    assert sel is not None
    if sel.readonly:
        raise _readonly_refusal()
    if "e" not in session.rights:
        raise _noperm(session, "e", "expunge")  # RFC 4314 §4
    uids = list(sel.uids)
    if cmd.uid_set is not None:
        uids = sel.resolve(cmd.uid_set, True)  # RFC 4315 §2.1 UID EXPUNGE
    if not uids:
        return None
    rows = await session.ctx.store.index_rows(sel.folder_id, uid_ranges(uids))
    deleted = [r.uid for r in rows if "\\Deleted" in r.flags]
    if deleted:
        modseq = await session.ctx.store.expunge(sel.folder_id, deleted)
        for line in sel.take_expunged(deleted, session.qresync):
            session.write(line)
        if session.condstore:
            return Done("Completed", ResponseCode.highestmodseq(modseq))  # RFC 7162 §3.1.12
    return None
