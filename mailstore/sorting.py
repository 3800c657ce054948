"""Sorting messages as RFC 5256 SORT (and RFC 5957 DISPLAYFROM/DISPLAYTO) defines it,
below the front-ends so the IMAP server and the webmail order lists the same way.

The API:

* :func:`base_subject` — the base subject of RFC 5256 §2.1 (``Re:``, ``Fwd:``, ``[blob]``
  leaders, ``(fwd)`` trailers and ``[fwd: …]`` wrappers removed), with whether the subject
  was a reply or forward (REFERENCES threading needs it);
* :data:`COLLATIONS` — ``i;ascii-casemap`` (RFC 4790 §9.2, SORT's default) and
  ``i;unicode-casemap`` (RFC 5051): each maps a string to a key whose code point order is
  the collation's order;
* :class:`SortInfo` — what a message is sorted on, built from its header by
  :func:`sort_info` (:func:`load_sort_info` reads them for a folder's messages);
* :func:`sort_infos` — the messages in the order of a list of :class:`SortKey`;
* :func:`sort_folder` — ``await sort_folder(store, folder_id, keys, criteria)``: the UIDs
  of the folder's messages matching a search key, sorted (for the webmail).

RFC 5256 §3: messages equal on every key are in mailbox order (ascending UID); REVERSE
reverses one key only, never that final order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mail.addresses import parse_address_list
from mail.mimeheader import parse_header
from mail.views import date_instant, decode_words
from mailstore.search import FolderScope, search_rows
from mailstore.searchkeys import SearchAll, SearchKey
from mailstore.store import BodyReader, MailStore, MessageRow

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                       "DISPLAYFROM", "DISPLAYTO"})
"""RFC 5256 §3 sort keys, and RFC 5957 §2 DISPLAYFROM and DISPLAYTO."""

# --- base subject (RFC 5256 §2.1) --------------------------------------------------

_WSP_RUN = re.compile(r"[ \t\r\n]+")
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])$", re.IGNORECASE)
# subj-blob = "[" *BLOBCHAR "]" *WSP
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP
# [subj-blob] ":"
_LEADER = re.compile(rf"(?:(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:|[ \t])", re.IGNORECASE)
_BLOB_PREFIX = re.compile(_BLOB)
_FWD_HDR = "[fwd:"


def base_subject(subject: str | None) -> tuple[str, bool]:
    """``(base subject, reply or forward)`` of a decoded Subject (RFC 5256 §2.1).

    The steps, in the RFC's numbering: (1) runs of white space become one space (the
    encoded words are already decoded); (2) trailers ``(fwd)`` and white space are removed,
    repeatedly; (3) leaders (``Re:``, ``Fw:``, ``Fwd:``, optionally after ``[blob]``s and
    with a ``[blob]`` before the colon) and white space are removed; (4) a leading
    ``[blob]`` is removed when something other than white space remains; (5) (3) and (4)
    are repeated until nothing changes; (6) a ``[fwd: …]`` wrapper is removed, and the
    steps start again at (2). The flag is true when (3) removed a ``Re:``/``Fw:`` or (6)
    a wrapper (RFC 5256 §2.1 note: "the subject was a reply or forward").
    """
    text = _WSP_RUN.sub(" ", subject or "")
    refwd = False
    while True:
        # (2)
        while True:
            m = _TRAILER.search(text)
            if m is None:
                break
            text = text[: m.start()]
        # (3)-(5)
        while True:
            changed = False
            while (m := _LEADER.match(text)) is not None:
                if m.group().strip():
                    refwd = True
                text = text[m.end():]
                changed = True
            m = _BLOB_PREFIX.match(text)
            if m is not None and text[m.end():].strip():
                text = text[m.end():]
                changed = True
            if not changed:
                break
        # (6)
        if text[:5].lower() == _FWD_HDR and text.endswith("]"):
            text = text[5:-1]
            refwd = True
            continue
        return text, refwd


# --- collations --------------------------------------------------------------------

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_casemap(text: str) -> str:
    """RFC 4790 §9.2 i;ascii-casemap: a-z compare as A-Z, everything else as octets (the
    code point order of a str is the octet order of its UTF-8)."""
    return text.translate(_ASCII_UPPER)


def _titlecase(ch: str) -> str:
    """The simple titlecase mapping of one character (UnicodeData.txt field 14): Python
    gives the full mapping, which differs only where it is several characters."""
    mapped = ch.title()
    return mapped if len(mapped) == 1 else ch


def unicode_casemap(text: str) -> str:
    """RFC 5051 §2 i;unicode-casemap: each character titlecased, then the string fully
    decomposed (NFKD); compared as UTF-8 octets."""
    return unicodedata.normalize("NFKD", "".join(_titlecase(ch) for ch in text))


COLLATIONS: dict[str, Callable[[str], str]] = {
    "i;ascii-casemap": ascii_casemap,
    "i;unicode-casemap": unicode_casemap,
}
"""Collation name → key function (RFC 4790 names)."""

# --- what a message is sorted on ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortInfo:
    """The values of one message for SORT and THREAD (RFC 5256 §2.2, §3; RFC 5957)."""

    uid: int
    arrival: float  # INTERNALDATE, epoch seconds
    sent: float  # Date: in UTC, epoch seconds; the INTERNALDATE when missing or unreadable
    size: int
    subject: str  # decoded Subject ("" when absent)
    from_mailbox: str  # addr-mailbox of the first From address ("" when none)
    to_mailbox: str
    cc_mailbox: str
    display_from: str  # RFC 5957 §2: display name, else addr-spec
    display_to: str
    message_id: str | None  # "<…>" as written
    references: tuple[str, ...]  # References msg-ids, else the first In-Reply-To one
    has_references: bool  # True when References gave them (RFC 5256 REFERENCES step 1)


_MSG_ID = re.compile(r"<[^<>\s]+>")


def _first_address(value: str | None) -> tuple[str, str]:
    """``(addr-mailbox, display)`` of the first address of an address list (groups are
    skipped to their first member, as IMAP ENVELOPE lists them)."""
    for name, _adl, mailbox, host in parse_address_list(value):
        if mailbox is None or host is None:
            continue  # a group start or end marker
        display = (decode_words(name) or "").strip() if name else ""
        return mailbox, display or f"{mailbox}@{host}"
    return "", ""


def _sent(value: str | None, arrival: float) -> float:
    """RFC 5256 §2.2: the Date field's instant, else the INTERNALDATE (read as the store
    reads it at accept time into ``messages.sent_at``, :func:`mail.views.date_instant`)."""
    when = date_instant(value)
    return arrival if when is None else float(when)


def sort_info(uid: int, header: bytes, internal_date: datetime | None, size: int) -> SortInfo:
    """The sort values of a message from its header block."""
    h = parse_header(header, 0, len(header))
    arrival = internal_date.timestamp() if internal_date is not None else 0.0
    from_mailbox, display_from = _first_address(h.get("from"))
    to_mailbox, display_to = _first_address(h.get("to"))
    cc_mailbox, _ = _first_address(h.get("cc"))
    mid = _MSG_ID.search(h.get("message-id") or "")
    refs = tuple(_MSG_ID.findall(h.get("references") or ""))
    has_refs = bool(refs)
    if not refs:
        first = _MSG_ID.search(h.get("in-reply-to") or "")
        refs = (first.group(),) if first else ()
    return SortInfo(
        uid=uid, arrival=arrival, sent=_sent(h.get("date"), arrival), size=size,
        subject=decode_words(h.get("subject")) or "", from_mailbox=from_mailbox,
        to_mailbox=to_mailbox, cc_mailbox=cc_mailbox, display_from=display_from,
        display_to=display_to, message_id=mid.group() if mid else None,
        references=refs, has_references=has_refs,
    )


async def load_sort_info(reader: BodyReader, rows: Sequence[MessageRow]) -> list[SortInfo]:
    """The :class:`SortInfo` of ``rows`` (read with ``search=True``), in their order: one
    read of each header block, prefetched in batches."""
    out: list[SortInfo] = []
    for i in range(0, len(rows), 500):
        batch = rows[i : i + 500]
        await reader.prefetch([(r.blob_id, 0, r.header_size) for r in batch
                               if r.blob_id is not None])
        for r in batch:
            header = b"" if r.blob_id is None else await reader.read(r.blob_id, 0, r.header_size)
            out.append(sort_info(r.uid, header, r.internal_date, r.size))
    return out


# --- sorting -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort criterion: a key of :data:`SORT_KEYS`, reversed or not."""

    key: str
    reverse: bool = False


def _value(info: SortInfo, key: str, collate: Callable[[str], str]) -> str | float | int:
    if key == "ARRIVAL":
        return info.arrival
    if key == "DATE":
        return info.sent
    if key == "SIZE":
        return info.size
    if key == "SUBJECT":
        return collate(base_subject(info.subject)[0])
    if key == "FROM":
        return collate(info.from_mailbox)
    if key == "TO":
        return collate(info.to_mailbox)
    if key == "CC":
        return collate(info.cc_mailbox)
    if key == "DISPLAYFROM":
        return collate(info.display_from)
    if key == "DISPLAYTO":
        return collate(info.display_to)
    raise ValueError(f"unknown sort key {key!r}")


def sort_infos(infos: Iterable[SortInfo], keys: Sequence[SortKey],
               collation: str = "i;ascii-casemap") -> list[SortInfo]:
    """``infos`` in the order of ``keys`` (RFC 5256 §3), ties in ascending UID order."""
    collate = COLLATIONS[collation]
    out = sorted(infos, key=lambda i: i.uid)
    # Stable sorts from the last key to the first: each key orders the ties of those
    # before it, and REVERSE reverses its own key only.
    for key in reversed(keys):
        out.sort(key=_key_function(key.key, collate), reverse=key.reverse)
    return out


def _key_function(key: str, collate: Callable[[str], str]
                  ) -> Callable[[SortInfo], str | float | int]:
    return lambda info: _value(info, key, collate)


def _ranges(uids: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for uid in sorted(uids):
        if out and out[-1][1] + 1 == uid:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


async def load_infos(store: MailStore, folder_id: int, uids: Sequence[int]) -> list[SortInfo]:
    """The :class:`SortInfo` of the messages ``uids`` of a folder that still exist,
    ascending by UID."""
    wanted = set(uids)
    async with store.body_reader() as reader:
        rows = await reader.fetch_rows(folder_id, _ranges(uids), full=False, search=True)
        return await load_sort_info(reader, [r for r in rows if r.uid in wanted])


async def sort_folder(store: MailStore, folder_id: int, keys: Sequence[SortKey],
                      criteria: SearchKey | None = None,
                      collation: str = "i;ascii-casemap") -> list[int]:
    """The UIDs of the folder's messages that match ``criteria`` (all when None), in the
    order of ``keys``. The caller checks the right to read the folder first."""
    scope = await FolderScope.of(store, folder_id)
    rows = await search_rows(store, scope, criteria or SearchAll())
    infos = await load_infos(store, folder_id, [r.uid for r in rows])
    return [i.uid for i in sort_infos(infos, keys, collation)]
