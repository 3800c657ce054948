"""The return options of SEARCH and SORT (RFC 4731 §3, RFC 5182, RFC 5267 §4) and the
CANCELUPDATE command (RFC 5267 §4.3): their parser, shared by SEARCH and SORT.

RFC 5267 §5::

    search-return-opt =/ "CONTEXT" / "UPDATE" / "PARTIAL" SP partial-range
    partial-range     = nz-number ":" nz-number
    command-select    =/ "CANCELUPDATE" 1*(SP quoted)

Negative partial ranges are RFC 9394's, not offered here: ``PARTIAL -1:-10`` is BAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from imap.protocol.commands import Command
from imap.protocol.tokens import Cursor

SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE",
                           "PARTIAL"})
SORT_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "CONTEXT", "UPDATE", "PARTIAL"})


@dataclass(frozen=True, slots=True)
class ReturnOptions:
    """``RETURN (...)``: the option names in order (``PARTIAL`` among them when given)
    and the partial range as ``(low, high)`` with ``low <= high``."""

    names: tuple[str, ...]
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """``CANCELUPDATE "tag" ...`` (RFC 5267 §4.3): ends the UPDATE contexts named."""

    tags: tuple[str, ...] = ()


def parse_return(cur: Cursor, allowed: frozenset[str], what: str) -> ReturnOptions:
    """``"(" [option *(SP option)] ")"`` after ``RETURN``, checked as RFC 5267 requires."""
    cur.expect(b"(")
    names: list[str] = []
    partial: tuple[int, int] | None = None
    if not cur.accept(b")"):
        while True:
            opt = cur.keyword(f"{what} return option")
            if opt not in allowed:
                cur.fail(f"unknown {what} return option {opt[:20]}")
            if opt == "PARTIAL":
                cur.sp()
                if cur.peek() == 0x2D:  # "-"
                    cur.fail("negative PARTIAL ranges (RFC 9394) are not supported")
                low = cur.nz_number("PARTIAL range")
                cur.expect(b":")
                if cur.peek() == 0x2D:
                    cur.fail("negative PARTIAL ranges (RFC 9394) are not supported")
                high = cur.nz_number("PARTIAL range")
                partial = (min(low, high), max(low, high))
            names.append(opt)
            if cur.accept(b")"):
                break
            cur.sp()
    unique = tuple(dict.fromkeys(names))
    chosen = set(unique)
    # RFC 5267 §4.4: PARTIAL is an alternative to ALL, not a companion.
    if "PARTIAL" in chosen and "ALL" in chosen:
        cur.fail("ALL and PARTIAL cannot be used together (RFC 5267 §4.4)")
    if "UPDATE" in chosen:
        # RFC 5267 §4.3: the updates are ADDTO/REMOVEFROM of the whole result. A saved
        # result ($, RFC 5182) is not a context and is not kept up to date; MIN and MAX
        # cannot be followed by position updates the client could apply.
        if "SAVE" in chosen:
            cur.fail("UPDATE cannot be used with SAVE (RFC 5267 §4.3)")
        if chosen & {"MIN", "MAX"}:
            cur.fail("UPDATE cannot be used with MIN or MAX (RFC 5267 §4.3)")
    return ReturnOptions(unique, partial)


def parse_cancelupdate(cur: Cursor, tag: str, uid: bool) -> Command:
    """``CANCELUPDATE 1*(SP quoted)``."""
    tags: list[str] = []
    cur.sp()
    while True:
        raw = cur.quoted()
        if raw is None:
            cur.fail("CANCELUPDATE takes quoted tags")
        tags.append(raw.decode("utf-8", "replace"))
        if not cur.maybe_sp():
            break
    return CancelUpdate(tag, tuple(tags))
