"""COPY, MOVE and their UID forms (RFC 9051 §6.4.7-6.4.8, RFC 6851, RFC 4315 COPYUID)."""

from __future__ import annotations

from imap.commands import SELECTED, register
from imap.commands.mailboxes import require_access
from imap.protocol import ImapRefusal, ResponseCode, SequenceSet, untagged
from imap.protocol import commands as c
from imap.session import Done, Session


async def _target(session: Session, name: str) -> tuple[int, int]:
    # RFC 9051 §6.4.7: TRYCREATE tells the client it may CREATE and retry.
    access = await require_access(session, name, missing="TRYCREATE")
    access.require("i", "copy messages")  # RFC 4314 §4: COPY/MOVE into needs "i"
    return access.folder.id, access.folder.uidvalidity


def _copyuid(uidvalidity: int, pairs: list[tuple[int, int]]) -> ResponseCode:
    # Both sets list UIDs in the same order; consecutive runs stay compact.
    src = SequenceSet(tuple((s, s) for s, _ in pairs))
    dst = SequenceSet(tuple((d, d) for _, d in pairs))
    return ResponseCode.copyuid(uidvalidity, _compact(src), _compact(dst))


def _compact(s: SequenceSet) -> SequenceSet:
    ranges: list[tuple[int, int]] = []
    for a, _ in s.ranges:
        if ranges and ranges[-1][1] + 1 == a:
            ranges[-1] = (ranges[-1][0], a)
        else:
            ranges.append((a, a))
    return SequenceSet(tuple(ranges))


@register(c.Copy, SELECTED)
async def copy(session: Session, cmd: c.Copy) -> Done | None:
    sel = session.selected
    assert sel is not None
    dest_id, uidvalidity = await _target(session, cmd.mailbox)
    uids = sel.resolve(cmd.sequence_set, cmd.uid)
    if not uids:
        return None
    pairs = await session.ctx.store.copy(sel.folder_id, uids, dest_id)
    if not pairs:
        return None
    return Done("Completed", _copyuid(uidvalidity, pairs))


@register(c.Move, SELECTED)
async def move(session: Session, cmd: c.Move) -> Done | None:
    """RFC 6851 §4.3: untagged OK [COPYUID], then EXPUNGE (or VANISHED), then tagged OK."""
    sel = session.selected
    assert sel is not None
    if sel.readonly:
        raise ImapRefusal("NO", "READ-ONLY", "The mailbox is selected read-only (EXAMINE, "
                          "or your rights on it allow no change)")
    missing = "".join(r for r in "te" if r not in session.rights)
    if missing:
        # RFC 6851 §3.3 / RFC 4314 §4: moving out needs "t" and "e" on the source.
        raise ImapRefusal("NO", "NOPERM", f"You may not move messages out of {sel.name!r}: "
                          "the rights to delete (t) and expunge (e) are needed")
    dest_id, uidvalidity = await _target(session, cmd.mailbox)
    uids = sel.resolve(cmd.sequence_set, cmd.uid)
    if not uids:
        return None
    # RFC 6851 §3.3: the target may be the selected mailbox; the copies get new UIDs and
    # appear at the end (EXISTS) once the sources are expunged.
    pairs = await session.ctx.store.copy(sel.folder_id, uids, dest_id, move=True)
    if pairs:
        session.write(untagged("OK", "Moved", _copyuid(uidvalidity, pairs)))
        for line in sel.take_expunged([s for s, _ in pairs], session.qresync):
            session.write(line)
    return None
