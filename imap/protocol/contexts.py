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
    and the partial range as the client wrote it (``500:400`` is ``400:500``, RFC 5267
    §4.4, and the answer repeats the original range)."""

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
                partial = (low, high)  # §4.4: 500:400 is 400:500, answered as given
            names.append(opt)
            if cur.accept(b")"):
                break
            cur.sp()
    unique = tuple(dict.fromkeys(names))
    # RFC 5267 §4.4: "A single command MUST NOT contain more than one PARTIAL or ALL
    # search return option". UPDATE has no interaction with the other options (§4.3:
    # RETURN (UPDATE MIN) reports every change to the set of matches).
    if names.count("PARTIAL") + names.count("ALL") > 1:
        cur.fail("one PARTIAL or one ALL at most (RFC 5267 §4.4)")
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
