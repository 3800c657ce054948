"""SEARCH criteria as a small typed tree (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 5032).

Protocol-free: the IMAP parser builds these keys (``imap.protocol`` re-exports them) and
the webmail can build them too; :mod:`mailstore.search` evaluates them against a folder.
This module imports nothing of the project, so the IMAP protocol package stays pure.

The parser normalises aliases so the search engine has fewer cases: ``NEW`` is
``AND(\\Recent, NOT \\Seen)``, ``OLD`` is ``NOT \\Recent``, ``UNSEEN`` is
``Flag(\\Seen, present=False)``, ``KEYWORD x`` is ``Flag(x)``, several keys in a
row are ``And``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "SearchAll",
    "SearchAnd",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModseq",
    "SearchNot",
    "SearchOr",
    "SearchSequence",
    "SearchSize",
    "SearchText",
    "SearchAge",
    "SearchObjectId",
    "SearchSaveDate",
    "NumberSet",
]


class NumberSet(Protocol):
    """A set of message numbers or UIDs as a client wrote it (IMAP's ``SequenceSet``
    satisfies it): ``saved`` stands for a saved search result (RFC 5182 ``$``), and
    ``contains`` answers with ``largest`` standing for ``*``."""

    @property
    def saved(self) -> bool: ...

    def contains(self, value: int, max_value: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class SearchAll:
    """``ALL``."""


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """A system flag or keyword that must be set (``present``) or not."""

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """``FROM``/``TO``/``CC``/``BCC``/``SUBJECT`` (``envelope``) or ``HEADER name value``
    (substring).

    RFC 3501 §6.4.4: SUBJECT and the address keys look at the envelope's field (the first
    occurrence, as ENVELOPE shows it), HEADER at every field of that name: a message with two
    Subject fields matches ``HEADER Subject`` on either."""

    name: str
    value: str
    envelope: bool = False


@dataclass(frozen=True, slots=True)
class SearchText:
    """``BODY`` (``body_only``) or ``TEXT`` (headers and body), substring match."""

    value: str
    body_only: bool


@dataclass(frozen=True, slots=True)
class SearchDate:
    """``BEFORE``/``ON``/``SINCE`` (internal date) or ``SENT*`` (Date: header)."""

    op: Literal["before", "on", "since"]
    date: datetime.date
    sent: bool


@dataclass(frozen=True, slots=True)
class SearchSize:
    """``LARGER n`` / ``SMALLER n`` on RFC822.SIZE."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SearchAge:
    """``OLDER n`` / ``YOUNGER n`` seconds (RFC 5032 WITHIN)."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchSaveDate:
    """``SAVEDBEFORE``/``SAVEDON``/``SAVEDSINCE`` date (RFC 8514 §4.2)."""

    op: Literal["before", "on", "since"]
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """``EMAILID id`` / ``THREADID id`` (RFC 8474 §6); ``kind`` is the key's name."""

    kind: Literal["EMAILID", "THREADID"]
    value: str


@dataclass(frozen=True, slots=True)
class SearchSequence:
    """A sequence set (message numbers) or ``UID set``; ``$`` is ``saved``."""

    set: NumberSet
    uid: bool


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """``MODSEQ [entry-name entry-type] n`` (RFC 7162 §3.1.5): mod-sequence >= n."""

    modseq: int
    entry: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SearchNot:
    """``NOT key``."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    """``OR key1 key2``."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """Several keys that must all match (juxtaposition or parentheses)."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll
    | SearchFlag
    | SearchHeader
    | SearchText
    | SearchDate
    | SearchSize
    | SearchAge
    | SearchObjectId
    | SearchSaveDate
    | SearchSequence
    | SearchModseq
    | SearchNot
    | SearchOr
    | SearchAnd
)
