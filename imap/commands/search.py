"""SEARCH and UID SEARCH with ESEARCH results and SEARCHRES (RFC 9051 §6.4.4, RFC 4731,
RFC 5182, RFC 7162 §3.1.5 MODSEQ).

The criteria are evaluated by :mod:`mailstore.search` (shared with the webmail) over the
selected mailbox, which gives the session's sequence numbers, ``\\Recent`` set and saved
result; this module puts the answer on the wire.
"""

from __future__ import annotations

from array import array

from imap.commands import SELECTED, register
from imap.contexts import UpdateContext, keep, refuse_tag_reuse
from imap.protocol import (
    Atom,
    ImapRefusal,
    SearchAll,
    SearchKey,
    SequenceSet,
    untagged_data,
)
from imap.protocol import commands as c
from imap.protocol.contexts import CancelUpdate
from imap.protocol.response import Value
from imap.selected import SelectedMailbox
from imap.session import Done, Session
from mailstore.search import search_rows, uses_modseq
from mailstore.store import MessageRow


async def run_search(session: Session, sel: SelectedMailbox, key: SearchKey) -> list[MessageRow]:
    """The rows of the selected mailbox's messages that match ``key``, in UID order."""
    return await search_rows(session.ctx.store, sel, key)


@register(c.Search, SELECTED)
async def search(session: Session, cmd: c.Search) -> Done | None:
    sel = session.selected
    assert sel is not None
    if cmd.returns and "UPDATE" in cmd.returns:
        refuse_tag_reuse(sel, cmd.tag)
    key = cmd.criteria or SearchAll()
    modseq_used = uses_modseq(key)
    if modseq_used:
        session.enable_condstore()  # RFC 7162 §3.1.5
    found = await run_search(session, sel, key)
    uids = [r.uid for r in found]
    numbers = uids if cmd.uid else [sel.seq_of(u) or 0 for u in uids]
    returns = cmd.returns
    if returns is None and session.rev2:
        returns = ("ALL",)  # RFC 9051 §6.4.4: IMAP4rev2 answers ESEARCH
    if returns is None:
        parts: list[Value] = ["SEARCH", *numbers]
        if modseq_used and numbers:
            highest = max(r.modseq for r in found)
            parts.append(Atom(f"(MODSEQ {highest})"))  # RFC 7162 §3.1.5
        session.write(untagged_data(*parts))
        return None
    wanted = set(returns)
    if not wanted - {"CONTEXT"}:
        # RFC 4731 §3.1: RETURN () is ALL; CONTEXT is only a hint (RFC 5267 §4.2). With
        # UPDATE alone the client asked for the changes only.
        wanted.add("ALL")
    if "SAVE" in wanted:
        # RFC 5182 §2.4: with MIN and/or MAX only those are saved.
        if wanted & {"MIN", "MAX"} and not wanted & {"ALL", "COUNT"}:
            kept = []
            if "MIN" in wanted and uids:
                kept.append(uids[0])
            if "MAX" in wanted and uids:
                kept.append(uids[-1])
            sel.saved = sorted(set(kept))
        else:
            sel.saved = uids
        wanted.discard("SAVE")
        if not wanted:
            return None  # RFC 5182 §2.1: SAVE alone gives no ESEARCH response
    if "UPDATE" in wanted:
        refused = keep(sel, UpdateContext(cmd.tag, cmd.uid, key, None, array("I", uids)),
                       session.ctx.settings.imap.max_update_contexts)
        if refused is not None:
            session.write(refused)
    out: list[Value] = ["ESEARCH", Atom(f'(TAG "{cmd.tag}")')]
    if cmd.uid:
        out.append("UID")
    if numbers:
        if "MIN" in wanted:
            out += ["MIN", numbers[0]]
        if "MAX" in wanted:
            out += ["MAX", numbers[-1]]
        if "ALL" in wanted:
            out += ["ALL", SequenceSet.from_ints(numbers)]
    if cmd.partial is not None:
        out += ["PARTIAL", partial_value(cmd.partial, numbers, ordered=False)]
    if "COUNT" in wanted:
        out += ["COUNT", len(numbers)]
    if modseq_used and numbers:
        # RFC 7162 §3.1.5: with MIN and/or MAX alone, the MODSEQ of the messages returned;
        # with ALL or COUNT, the highest of every match.
        returned = found
        if not wanted & {"ALL", "COUNT", "PARTIAL"}:
            returned = [r for r, want in ((found[0], "MIN"), (found[-1], "MAX"))
                        if want in wanted]
        out += ["MODSEQ", max(r.modseq for r in returned)]
    session.write(untagged_data(*out))
    return None


def partial_value(window: tuple[int, int], numbers: list[int], *, ordered: bool) -> Atom:
    """RFC 5267 §4.4 ``"(" partial-range SP partial-results ")"``: the results at positions
    ``low`` to ``high`` (1-based, either way round) of the whole result, NIL when there are
    none there.
    ``ordered`` (SORT) keeps the sort order, number by number; SEARCH's are in ascending
    order and may use ranges."""
    first, last = window
    low, high = min(first, last), max(first, last)
    part = numbers[low - 1 : high]
    if not part:
        text = "NIL"
    elif ordered:
        text = ",".join(str(n) for n in part)
    else:
        text = str(SequenceSet.from_ints(part))
    return Atom(f"({first}:{last} {text})")  # §4.4: the original range


@register(CancelUpdate, SELECTED)
async def cancelupdate(session: Session, cmd: CancelUpdate) -> Done | None:
    """RFC 5267 §4.3: no more ADDTO/REMOVEFROM for the results of the tags named; all of
    them must be live (otherwise nothing is cancelled)."""
    sel = session.selected
    assert sel is not None
    unknown = [t for t in cmd.tags if t not in sel.contexts]
    if unknown:
        raise ImapRefusal("NO", None, f"No UPDATE result has the tag {unknown[0][:40]!r} "
                          "in this mailbox; nothing cancelled")
    for t in cmd.tags:
        del sel.contexts[t]
    return None
