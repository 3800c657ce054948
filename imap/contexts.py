"""Live SEARCH and SORT results (RFC 5267 §4.3, CONTEXT=SEARCH and CONTEXT=SORT).

A ``[UID] SEARCH`` or ``[UID] SORT`` with ``RETURN (UPDATE)`` leaves an
:class:`UpdateContext` on the selected mailbox: the criteria, the sort keys and the result
as the client last learnt it (UIDs, in result order). When the mailbox changes (new mail
announced with EXISTS, flags changed by anyone, expunges) the session re-evaluates the
criteria and tells the client the difference::

    * ESEARCH (TAG "A1") UID REMOVEFROM (3 12)
    * ESEARCH (TAG "A1") UID ADDTO (1 20,19 5 31)

Each ``(position set)`` pair applies in turn to the result as the previous pairs left it:
REMOVEFROM takes out the messages of ``set`` found from ``position`` (1-based, in the
result's order), ADDTO puts the messages of ``set``, in that order, from ``position``.
SEARCH results have no order of their own (UID order), so their position is 0 (RFC 5267
§5: "context-position ... may be 0 for SEARCH result additions", used for removals too).

Numbers are UIDs for ``UID SEARCH``/``UID SORT`` contexts; for the others they are
message sequence numbers, sent only where an EXPUNGE could be (RFC 9051 §7.5.1). An
expunged message leaves every context with a REMOVEFROM sent just before its EXPUNGE (or
VANISHED), while its number still holds; additions follow the EXISTS that announces them.

Updates are computed by evaluating the criteria again (the folder index answers most of
them from memory), only when the mailbox changed, and end with the mailbox: SELECT,
EXAMINE, CLOSE and UNSELECT drop every context, as does CANCELUPDATE for the ones named.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from imap.protocol import (
    Atom,
    ImapRefusal,
    ResponseCode,
    SequenceSet,
    untagged,
    untagged_data,
)
from imap.protocol.response import Value
from imap.protocol.search_keys import SearchKey
from imap.selected import SelectedMailbox
from mailstore.search import search_rows
from mailstore.sorting import SortKey, load_infos, sort_infos
from mailstore.store import MailStore


@dataclass(slots=True, eq=False)
class UpdateContext:
    """One live result: what the client asked and the result it knows.

    The result is an array of UIDs (32-bit, 4 octets each, not a list of int objects): a
    session may keep several results of a large mailbox."""

    tag: str
    uid: bool
    criteria: SearchKey
    sort_keys: tuple[SortKey, ...] | None  # None: a SEARCH context
    result: array[int] = field(default_factory=lambda: array("I"))
    dirty: bool = False


async def evaluate(store: MailStore, sel: SelectedMailbox, criteria: SearchKey,
                   sort_keys: Sequence[SortKey] | None) -> list[int]:
    """The UIDs matching ``criteria`` among the messages the session knows, in UID order
    or in the order of ``sort_keys``."""
    rows = await search_rows(store, sel, criteria)
    uids = [r.uid for r in rows]
    if sort_keys is None:
        return uids
    infos = await load_infos(store, sel.folder_id, uids)
    return [i.uid for i in sort_infos(infos, sort_keys)]


def refuse_tag_reuse(sel: SelectedMailbox, tag: str) -> None:
    """RFC 5267 §4.3: "An attempt to use UPDATE where a tag is already in use with a
    previous searching command that itself used UPDATE SHALL result in the server
    rejecting the searching command with a BAD response"."""
    if tag in sel.contexts:
        raise ImapRefusal("BAD", None, f"Tag reuse: {tag[:40]} already names a live "
                          "UPDATE result (RFC 5267 §4.3); use a new tag or CANCELUPDATE")


def keep(sel: SelectedMailbox, context: UpdateContext, limit: int) -> bytes | None:
    """Starts ``context``; past ``limit`` contexts the search is answered without one and
    the client is told with ``* NO [NOUPDATE "tag"]`` (RFC 5267 §4.3.1; the other return
    options are still honoured)."""
    if len(sel.contexts) >= limit:
        code = ResponseCode("NOUPDATE", f'"{context.tag}"') if "]" not in context.tag else None
        return untagged("NO", f"No updates for this result: {limit} are already kept", code)
    sel.contexts[context.tag] = context
    return None


def _number(sel: SelectedMailbox, uid: int, by_uid: bool) -> int:
    return uid if by_uid else sel.seq_of(uid) or 0


def _runs(order: Sequence[int], members: set[int]) -> list[tuple[int, list[int]]]:
    """``(1-based position, uids)`` of each run of consecutive members of ``order``."""
    runs: list[tuple[int, list[int]]] = []
    previous = -2
    for index, uid in enumerate(order):
        if uid not in members:
            continue
        if index == previous + 1:
            runs[-1][1].append(uid)
        else:
            runs.append((index + 1, [uid]))
        previous = index
    return runs


def difference(sel: SelectedMailbox, context: UpdateContext, old: Sequence[int],
               new: Sequence[int]) -> list[bytes]:
    """The REMOVEFROM then ADDTO responses that turn ``old`` into ``new``."""
    gone = set(old) - set(new)
    came = set(new) - set(old)
    head: list[Value] = ["ESEARCH", Atom(f'(TAG "{context.tag}")')]
    if context.uid:
        head.append("UID")
    out: list[bytes] = []
    for name, members, order in (("REMOVEFROM", gone, old), ("ADDTO", came, new)):
        if not members:
            continue
        if context.sort_keys is None:
            numbers = [_number(sel, u, context.uid) for u in members]
            pairs = f"0 {SequenceSet.from_ints(numbers)}"  # mailbox order (§4.3.3)
        else:
            runs = _runs(order, members)
            if name == "REMOVEFROM":
                # Highest position first: each removal leaves the positions before it alone.
                runs.reverse()
            pairs = " ".join(
                f"{pos} " + ",".join(str(_number(sel, u, context.uid)) for u in uids)
                for pos, uids in runs)
        out.append(untagged_data(*head, name, Atom(f"({pairs})")))
    return out


def waiting(sel: SelectedMailbox) -> bool:
    """Whether a context has changes not yet reported."""
    return any(c.dirty for c in sel.contexts.values())


def expunged(sel: SelectedMailbox, uids: set[int]) -> list[bytes]:
    """REMOVEFROM for messages about to be expunged, while their sequence numbers still
    hold: they go before the EXPUNGE (or VANISHED) that removes them (RFC 5267 §4.3)."""
    out: list[bytes] = []
    for context in sel.contexts.values():
        old = context.result
        if not uids.intersection(old):
            continue
        new = [u for u in old if u not in uids]
        out += difference(sel, context, old, new)
        context.result = array("I", new)
    return out


async def updates(store: MailStore, sel: SelectedMailbox, *, allow_expunge: bool,
                  running: str | None = None) -> list[bytes]:
    """The ADDTO/REMOVEFROM of every context whose mailbox changed since its last report.

    Sequence-number contexts wait for a moment where EXPUNGE may be sent (their numbers
    must match what the client was told). The context of the command being answered
    (tag ``running``) waits for its tagged OK: its updates follow its completion."""
    out: list[bytes] = []
    for context in list(sel.contexts.values()):
        if (not context.dirty or not (context.uid or allow_expunge)
                or context.tag == running):
            continue
        context.dirty = False
        new = await evaluate(store, sel, context.criteria, context.sort_keys)
        out += difference(sel, context, context.result, new)
        context.result = array("I", new)
    return out
