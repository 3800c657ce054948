"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256), with ESORT results (RFC 5267 §3.1)
and the MODSEQ of CONDSTORE (RFC 7162 §3.1.5) on SORT.

The search, sort and threading logic is :mod:`mailstore.search`, :mod:`mailstore.sorting`
and :mod:`mailstore.threads` (shared with the webmail); this module gives the session's
numbers and writes the answers. Strings are compared with i;ascii-casemap, the RFC 5256
default (no COMPARATOR command, RFC 5255, is offered).
"""

from __future__ import annotations

from array import array

from imap.commands import SELECTED, register
from imap.commands.search import partial_value, run_search
from imap.contexts import UpdateContext, keep, refuse_tag_reuse
from imap.protocol import Atom, untagged_data
from imap.protocol.response import Value
from imap.protocol.sort_thread import Sort, Thread
from imap.selected import SelectedMailbox
from imap.session import Done, Session
from mailstore.search import uses_modseq
from mailstore.sorting import SortInfo, SortKey, load_infos, sort_infos
from mailstore.threads import Node, thread_orderedsubject, thread_references


async def _infos(session: Session, sel: SelectedMailbox, cmd: Sort | Thread,
                 ) -> tuple[list[SortInfo], int | None]:
    """The matching messages' sort values, and the highest MODSEQ among them when the
    criteria use MODSEQ (RFC 7162 §3.1.5)."""
    key = cmd.criteria
    assert key is not None
    modseq_used = uses_modseq(key)
    if modseq_used:
        session.enable_condstore()
    found = await run_search(session, sel, key)
    infos = await load_infos(session.ctx.store, sel.folder_id, [r.uid for r in found])
    known = {i.uid for i in infos}
    highest = max((r.modseq for r in found if r.uid in known), default=None)
    return infos, highest if modseq_used else None


def _number(sel: SelectedMailbox, uid: int, by_uid: bool) -> int:
    return uid if by_uid else sel.seq_of(uid) or 0


@register(Sort, SELECTED)
async def sort(session: Session, cmd: Sort) -> Done | None:
    sel = session.selected
    assert sel is not None
    if cmd.returns and "UPDATE" in cmd.returns:
        refuse_tag_reuse(sel, cmd.tag)
    infos, modseq = await _infos(session, sel, cmd)
    sort_keys = tuple(SortKey(k, r) for k, r in cmd.keys)
    ordered = sort_infos(infos, sort_keys)
    criteria = cmd.criteria
    assert criteria is not None
    numbers = [n for i in ordered if (n := _number(sel, i.uid, cmd.uid))]
    if cmd.returns is None:
        parts: list[Value] = ["SORT", *numbers]
        if modseq is not None and numbers:
            parts.append(Atom(f"(MODSEQ {modseq})"))  # RFC 7162 §3.1.5
        session.write(untagged_data(*parts))
        return None
    # RFC 5267 §3.1: ESORT answers ESEARCH, MIN/MAX being the first/last in sort order
    # and ALL the numbers in sort order.
    wanted = set(cmd.returns)
    if not wanted - {"CONTEXT"}:
        wanted.add("ALL")  # RFC 4731 §3.1 (RETURN () is ALL), as for SEARCH
    if "UPDATE" in wanted:
        refused = keep(sel, UpdateContext(cmd.tag, cmd.uid, criteria, sort_keys,
                                          array("I", (i.uid for i in ordered))),
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
            out += ["ALL", Atom(",".join(str(n) for n in numbers))]
    if cmd.partial is not None:
        # RFC 5267 §4.4: positions in the sort order.
        out += ["PARTIAL", partial_value(cmd.partial, numbers, ordered=True)]
    if "COUNT" in wanted:
        out += ["COUNT", len(numbers)]
    if modseq is not None and numbers:
        out += ["MODSEQ", modseq]
    session.write(untagged_data(*out))
    return None


def _members(node: Node, sel: SelectedMailbox, by_uid: bool) -> str:
    """RFC 5256 §5 thread-members / thread-nested of a node: ``n`` then its only reply
    after a space, or its replies as parenthesized thread lists."""
    children = "".join(f"({_members(c, sel, by_uid)})" for c in node.children)
    if node.uid is None:  # a dummy: only its children (RFC 5256 §4, "((3)(5))")
        if len(node.children) == 1:
            return _members(node.children[0], sel, by_uid)
        return children
    head = str(_number(sel, node.uid, by_uid))
    if not node.children:
        return head
    if len(node.children) == 1:
        return f"{head} {_members(node.children[0], sel, by_uid)}"
    return f"{head} {children}"


@register(Thread, SELECTED)
async def thread(session: Session, cmd: Thread) -> Done | None:
    sel = session.selected
    assert sel is not None
    infos, _ = await _infos(session, sel, cmd)
    if cmd.algorithm == "ORDEREDSUBJECT":
        roots = thread_orderedsubject(infos)
    else:
        roots = thread_references(infos)
    lists = "".join(f"({_members(r, sel, cmd.uid)})" for r in roots)
    session.write(untagged_data("THREAD", Atom(lists)) if lists else untagged_data("THREAD"))
    return None
