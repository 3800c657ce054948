"""SORT and THREAD commands (RFC 5256 §5; RFC 5957 DISPLAYFROM/DISPLAYTO; RFC 5267 §3.1
ESORT's ``RETURN``): their typed form and their parser, which the command parser
(:mod:`imap.protocol.parser`) dispatches to."""

from __future__ import annotations

from dataclasses import dataclass

from imap.protocol.commands import Command
from imap.protocol.contexts import SORT_RETURN, parse_return
from imap.protocol.errors import BadCharset
from imap.protocol.search_keys import SearchAnd, SearchKey
from imap.protocol.tokens import Cursor

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                       "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """``[UID] SORT [RETURN (...)] (criteria) charset search-key...`` (RFC 5256 §3).

    ``keys`` holds ``(key, reverse)`` pairs in order; ``returns`` is None for a plain
    SORT (untagged SORT reply) and a tuple for ESORT (RFC 5267 §3.1; ``()`` means ALL).
    """

    uid: bool = False
    keys: tuple[tuple[str, bool], ...] = ()
    criteria: SearchKey | None = None
    charset: str = "UTF-8"
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None  # RFC 5267 §4.4


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """``[UID] THREAD algorithm charset search-key...`` (RFC 5256 §4)."""

    uid: bool = False
    algorithm: str = "REFERENCES"
    criteria: SearchKey | None = None
    charset: str = "UTF-8"


def _criteria(cur: Cursor, tag: str) -> tuple[str, SearchKey]:
    """``charset 1*(SP search-key)``: RFC 5256 §5 makes the charset mandatory."""
    from imap.protocol import parser  # the search-key grammar; imported late (cycle)

    charset = cur.text(cur.astring("charset"), "charset").upper()
    if charset not in parser.CHARSETS:
        raise BadCharset(charset, tag)  # RFC 5256 §3: NO [BADCHARSET]
    cur.sp()
    keys = [parser.search_key(cur, charset)]
    while cur.maybe_sp():
        keys.append(parser.search_key(cur, charset))
    return charset, keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))


def parse_sort(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    if cur.data[cur.pos : cur.pos + 8].upper() == b"RETURN (":
        cur.pos += 7
        options = parse_return(cur, SORT_RETURN, "SORT")
        returns, partial = options.names, options.partial
        cur.sp()
    cur.expect(b"(")
    keys: list[tuple[str, bool]] = []
    while True:
        word = cur.keyword("sort key")
        reverse = word == "REVERSE"
        if reverse:
            cur.sp()
            word = cur.keyword("sort key")
        if word not in SORT_KEYS:
            cur.fail(f"unknown sort key {word[:20]}")
        keys.append((word, reverse))
        if cur.accept(b")"):
            break
        cur.sp()
    cur.sp()
    charset, criteria = _criteria(cur, tag)
    return Sort(tag, uid, tuple(keys), criteria, charset, returns, partial)


def parse_thread(cur: Cursor, tag: str, uid: bool) -> Command:
    cur.sp()
    algorithm = cur.keyword("threading algorithm")
    if algorithm not in THREAD_ALGORITHMS:
        cur.fail(f"unknown threading algorithm {algorithm[:20]}")
    cur.sp()
    charset, criteria = _criteria(cur, tag)
    return Thread(tag, uid, algorithm, criteria, charset)
