"""SEARCH evaluation below the front-ends (RFC 9051 §6.4.4, RFC 7162 §3.1.5, RFC 5032).

The IMAP server (``imap/commands/search.py``) and the webmail run the same code. The API:

* :mod:`mailstore.searchkeys` holds the criteria tree (``SearchAll``, ``SearchFlag``,
  ``SearchHeader``, ``SearchText``, ``SearchDate``, ``SearchSize``, ``SearchAge``,
  ``SearchSequence``, ``SearchModseq``, ``SearchNot``, ``SearchOr``, ``SearchAnd``); it is
  re-exported by this module.
* :func:`search_folder` — ``await search_folder(store, folder_id, key)`` — the UIDs, in
  ascending order, of the messages of a folder that match ``key``. This is what the
  webmail calls (after its own access check: this layer does not look at rights).
* :func:`search_rows` — the matching :class:`~mailstore.store.MessageRow` rows of a
  :class:`SearchScope` (UID, MODSEQ and flags at least), for callers that need the
  MODSEQ or a session's own numbering.
* :class:`SearchScope` — the messages a search looks at and how they are numbered: an IMAP
  session's selected mailbox satisfies it (its sequence numbers, ``\\Recent`` set and
  RFC 5182 saved result), and :class:`FolderScope` is the plain one for every current
  message of a folder (sequence number = position in UID order, nothing recent or saved).

What stays in IMAP is the protocol: parsing, CHARSET, the numbers put on the wire, ESEARCH
and SEARCHRES.

Flags, numbers, MODSEQ and the Subject/From/To/Cc texts are answered from the folder
index; dates and sizes from the message rows; other header fields from the stored header;
BODY and TEXT from the decoded text of the text parts (:mod:`mail.searchtext`) indexed
sealed at accept time, or decoded from the stored message when it was not indexed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol, cast

from mail.searchtext import body_text, header_text
from mail.sections import filter_header_fields
from mail.views import decode_words
from mailstore.folderindex import HeaderTuple
from mailstore.objectid import message_row_of
from mailstore.searchkeys import (
    SearchAge,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchObjectId,
    SearchOr,
    SearchSaveDate,
    SearchSequence,
    SearchSize,
    SearchText,
)
from mailstore.store import BodyReader, MailStore, MessageRow

__all__ = [
    "FolderScope",
    "SearchAge",
    "SearchAll",
    "SearchAnd",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModseq",
    "SearchNot",
    "SearchOr",
    "SearchScope",
    "SearchSequence",
    "SearchSize",
    "SearchText",
    "search_folder",
    "search_rows",
    "uses_modseq",
]


class UidSequence(Protocol):
    """Ascending UIDs (IMAP's ``UidList`` or :class:`SortedUids`)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[int]: ...

    def __getitem__(self, index: int) -> int: ...

    def ranges(self) -> list[tuple[int, int]]: ...


class SearchScope(Protocol):
    """The messages a search looks at, and their numbers (see the module docstring)."""

    @property
    def folder_id(self) -> int: ...

    @property
    def uids(self) -> UidSequence: ...

    @property
    def recent(self) -> Collection[int]: ...

    @property
    def saved(self) -> list[int] | None: ...

    def seq_of(self, uid: int) -> int | None: ...


class SortedUids:
    """A plain ascending list of UIDs with the :class:`UidSequence` methods."""

    __slots__ = ("_uids",)

    def __init__(self, uids: Sequence[int]) -> None:
        self._uids = list(uids)

    def __len__(self) -> int:
        return len(self._uids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._uids)

    def __getitem__(self, index: int) -> int:
        return self._uids[index]

    def index(self, uid: int) -> int:
        """Position of ``uid`` (0-based), or -1."""
        i = bisect_left(self._uids, uid)
        return i if i < len(self._uids) and self._uids[i] == uid else -1

    def ranges(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for uid in self._uids:
            if out and out[-1][1] + 1 == uid:
                out[-1] = (out[-1][0], uid)
            else:
                out.append((uid, uid))
        return out


@dataclass(slots=True)
class FolderScope:
    """Every current message of a folder, numbered 1..n in UID order (no session state:
    nothing is ``\\Recent``, there is no saved result)."""

    folder_id: int
    uids: SortedUids
    recent: frozenset[int] = field(default_factory=frozenset)
    saved: list[int] | None = None

    @classmethod
    async def of(cls, store: MailStore, folder_id: int) -> FolderScope:
        """The folder's messages as its index holds them now."""
        entries = await store.index_entries(folder_id)
        return cls(folder_id, SortedUids(sorted(entries)))

    def seq_of(self, uid: int) -> int | None:
        i = self.uids.index(uid)
        return None if i < 0 else i + 1


async def search_folder(store: MailStore, folder_id: int, key: SearchKey) -> list[int]:
    """The UIDs (ascending) of the messages of folder ``folder_id`` that match ``key``.

    Sequence-number criteria count the messages 1..n in UID order; ``\\Recent`` matches
    nothing and ``$`` (a saved result) is empty. The caller checks the right to read the
    folder first (RFC 4314 ``r``), as the IMAP server does at SELECT.
    """
    scope = await FolderScope.of(store, folder_id)
    return [row.uid for row in await search_rows(store, scope, key)]


_COLUMNS = {"subject": "subject", "from": "from_addr", "to": "to_addr", "cc": "cc_addr"}


def _column_answers(key: SearchHeader) -> bool:
    """Whether the stored Subject/From/To/Cc text answers ``key``.

    RFC 3501 §6.4.4: ``HEADER <field> ""`` matches every message that *has* the field;
    the stored text is empty both for an absent field and an empty one, so that question
    goes to the header itself."""
    return key.envelope and key.name.lower() in _COLUMNS and key.value != ""


def _has(key: SearchKey, kind: type) -> bool:
    """Whether a criterion of ``kind`` stands anywhere in the tree ``key``."""
    if isinstance(key, kind):
        return True
    if isinstance(key, SearchNot):
        return _has(key.key, kind)
    if isinstance(key, SearchOr):
        return _has(key.left, kind) or _has(key.right, kind)
    if isinstance(key, SearchAnd):
        return any(_has(k, kind) for k in key.keys)
    return False


def uses_modseq(key: SearchKey) -> bool:
    """Whether ``key`` has a MODSEQ criterion (RFC 7162 §3.1.5: it enables CONDSTORE)."""
    return _has(key, SearchModseq)


class _Matcher:
    """Evaluates a criteria tree against one message row, reading the body only if asked."""

    def __init__(self, sel: SearchScope, reader: BodyReader) -> None:
        self.sel = sel
        self.reader = reader
        self.now = datetime.now(UTC)
        self._header: bytes | None = None
        self._text: str | None = None
        self._header_text: str | None = None
        self._row: MessageRow | None = None
        self._headers: HeaderTuple | None = None  # the row's casefolded _COLUMNS
        self._leaves: dict[int, Predicate] = {}

    def start(self, row: MessageRow) -> None:
        self._row = row
        self._header = None
        self._text = None
        self._header_text = None
        self._headers = None

    async def header(self) -> bytes:
        row = self._row
        assert row is not None
        if self._header is None:
            self._header = b"" if row.blob_id is None else await self.reader.read(
                row.blob_id, 0, row.header_size)
        return self._header

    async def body(self) -> str:
        """The decoded, case-folded text of the body's text parts (RFC 9051 §6.4.4): the
        one indexed at accept time, else (a message stored before, or too large to index)
        decoded from the stored message now."""
        row = self._row
        assert row is not None
        if self._text is None:
            text = self.reader.indexed_text(row)
            if text is None:
                raw = b"" if row.blob_id is None else await self.reader.read(
                    row.blob_id, 0, row.size)
                text = body_text(raw) if raw else ""
            self._text = text
        return self._text

    async def match(self, key: SearchKey, row: MessageRow) -> bool:  # noqa: C901, PLR0911
        if isinstance(key, SearchAll):
            return True
        if isinstance(key, SearchAnd):
            for k in key.keys:
                if not await self.match(k, row):
                    return False
            return True
        if isinstance(key, SearchOr):
            return await self.match(key.left, row) or await self.match(key.right, row)
        if isinstance(key, SearchNot):
            return not await self.match(key.key, row)
        if isinstance(key, SearchFlag | SearchSequence | SearchModseq) or (
                isinstance(key, SearchHeader) and _column_answers(key)):
            # The criteria the folder index answers: the same predicates (_compile).
            test = self._leaves.get(id(key))
            if test is None:
                test = self._leaves[id(key)] = _compile(key, self.sel)
            headers = _NO_HEADERS
            if isinstance(key, SearchHeader):
                if self._headers is None:
                    self._headers = cast(HeaderTuple, tuple(
                        (getattr(row, column) or "").casefold() for column in _COLUMNS.values()))
                headers = self._headers
            return test(row.uid, self.sel.seq_of(row.uid) or 0, row.modseq, row.flags, headers)
        if isinstance(key, SearchSize):
            return row.size > key.size if key.larger else row.size < key.size
        if isinstance(key, SearchDate):
            if key.sent:
                if not row.date_header:
                    return False
                day = date.fromisoformat(row.date_header)
            else:
                when = row.internal_date or self.now
                day = when.astimezone(UTC).date()
            if key.op == "before":
                return day < key.date
            if key.op == "on":
                return day == key.date
            return day >= key.date
        if isinstance(key, SearchSaveDate):  # RFC 8514 §4.2, dates in UTC as INTERNALDATE
            saved = (row.saved_at or row.internal_date or self.now).astimezone(UTC).date()
            if key.op == "before":
                return saved < key.date
            return saved == key.date if key.op == "on" else saved >= key.date
        if isinstance(key, SearchObjectId):
            # RFC 8474 §6: THREADID is NIL for every message here, so it matches none.
            return key.kind == "EMAILID" and message_row_of(key.value) == row.message_id
        if isinstance(key, SearchAge):
            when = row.internal_date or self.now
            age = (self.now - when).total_seconds()
            return age >= key.seconds if key.older else age <= key.seconds
        if isinstance(key, SearchHeader):
            needle = key.value.casefold()
            lines = filter_header_fields(await self.header(), [key.name], False)
            if not lines.strip():
                return False
            if not needle:
                return True  # RFC 9051 §6.4.4: an empty string matches any such field
            text = lines.decode("utf-8", "replace").replace("\r\n", "").replace("\n", "")
            decoded = decode_words(text) or text
            return needle in decoded.casefold()
        if isinstance(key, SearchText):
            # RFC 9051 §6.4.4: BODY is the body's text; TEXT the header or the body.
            needle = key.value.casefold()
            if not key.body_only:
                if self._header_text is None:
                    self._header_text = header_text(await self.header())
                if needle in self._header_text:
                    return True
            return needle in await self.body()
        return False


def _flag_filters(key: SearchKey) -> tuple[list[str], list[str]]:
    """Flags every match must have / must not have, from the top-level AND of the criteria.

    They narrow the rows in SQL; every row read is still checked against the whole criteria
    below, so this only saves work and never changes the answer. ``\\Recent`` is per
    session and never stored, so it stays in Python.
    """
    keys = key.keys if isinstance(key, SearchAnd) else (key,)
    with_flags: list[str] = []
    without_flags: list[str] = []
    for k in keys:
        if isinstance(k, SearchFlag) and k.flag.lower() != "\\recent":
            (with_flags if k.present else without_flags).append(k.flag)
    return with_flags, without_flags


def _index_needs(key: SearchKey) -> tuple[bool, bool]:
    """(the folder index can answer, Subject/From/To/Cc are needed): criteria on flags,
    numbers, MODSEQ and those four headers need neither dates, sizes nor bodies."""
    if isinstance(key, SearchAll | SearchFlag | SearchSequence | SearchModseq):
        return True, False
    if isinstance(key, SearchHeader):
        return _column_answers(key), True
    subkeys: tuple[SearchKey, ...]
    if isinstance(key, SearchNot):
        subkeys = (key.key,)
    elif isinstance(key, SearchOr):
        subkeys = (key.left, key.right)
    elif isinstance(key, SearchAnd):
        subkeys = tuple(key.keys)
    else:
        return False, False
    answers = [_index_needs(k) for k in subkeys]
    return all(a for a, _ in answers), any(h for _, h in answers)


Predicate = Callable[[int, int, int, tuple[str, ...], HeaderTuple], bool]
"""``(uid, seq, modseq, flags, casefolded headers) → match`` for the folder index path."""

_NO_HEADERS: HeaderTuple = ("", "", "", "")
_HEADER_INDEX = {name: i for i, name in enumerate(_COLUMNS)}  # HeaderTuple's order


def _compile(key: SearchKey, sel: SearchScope) -> Predicate:  # noqa: C901, PLR0911
    """A plain function for an index-answerable criteria tree (see :func:`_index_needs`):
    the tree is walked once per SEARCH instead of once per message, with the same
    semantics as :class:`_Matcher`."""
    if isinstance(key, SearchAll):
        return lambda u, s, m, f, h: True
    if isinstance(key, SearchAnd):
        parts = [_compile(k, sel) for k in key.keys]
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda u, s, m, f, h: first(u, s, m, f, h) and second(u, s, m, f, h)

        def all_of(u: int, s: int, m: int, f: tuple[str, ...], h: HeaderTuple) -> bool:
            for part in parts:
                if not part(u, s, m, f, h):
                    return False
            return True
        return all_of
    if isinstance(key, SearchOr):
        left, right = _compile(key.left, sel), _compile(key.right, sel)
        return lambda u, s, m, f, h: left(u, s, m, f, h) or right(u, s, m, f, h)
    if isinstance(key, SearchNot):
        inner = _compile(key.key, sel)
        return lambda u, s, m, f, h: not inner(u, s, m, f, h)
    if isinstance(key, SearchFlag):
        present = key.present
        if key.flag.lower() == "\\recent":
            recent = sel.recent
            return lambda u, s, m, f, h: (u in recent) == present
        wanted = key.flag.lower()
        # Flag tuples are shared between messages: each is lowered once.
        lowered: dict[tuple[str, ...], bool] = {}

        def has_flag(u: int, s: int, m: int, f: tuple[str, ...], h: HeaderTuple) -> bool:
            got = lowered.get(f)
            if got is None:
                got = lowered[f] = wanted in (x.lower() for x in f)
            return got == present
        return has_flag
    if isinstance(key, SearchSequence):
        seqset = key.set
        if seqset.saved:
            saved = set(sel.saved or ())
            return lambda u, s, m, f, h: u in saved
        if key.uid:
            top = sel.uids[-1] if sel.uids else 0
            return lambda u, s, m, f, h: seqset.contains(u, top)
        count = len(sel.uids)
        return lambda u, s, m, f, h: seqset.contains(s, count)
    if isinstance(key, SearchModseq):
        floor = key.modseq
        return lambda u, s, m, f, h: m >= floor
    if isinstance(key, SearchHeader):
        needle = key.value.casefold()
        at = _HEADER_INDEX[key.name.lower()]
        return lambda u, s, m, f, h: needle in h[at]
    raise TypeError(f"{type(key).__name__} is not answered from the folder index")


async def _search_index(store: MailStore, sel: SearchScope, key: SearchKey,
                        headers: bool) -> list[MessageRow]:
    """SEARCH over the folder index: no row is read from the database, and the headers
    (when asked for) come from the message field cache."""
    fields: dict[int, HeaderTuple] = {}
    if headers:
        entries = await store.index_entries(sel.folder_id)
        fields = await store.header_fields(
            [e[2] for uid in sel.uids if (e := entries.get(uid)) is not None])
    # Taken again after the last await: the index may have moved on meanwhile.
    entries = await store.index_entries(sel.folder_id)
    test = _compile(key, sel)
    hits: list[MessageRow] = []
    get = entries.get
    for seq, uid in enumerate(sel.uids, 1):
        entry = get(uid)
        if entry is None:
            continue
        modseq, flags, mid = entry
        if test(uid, seq, modseq, flags, fields.get(mid, _NO_HEADERS)):
            hits.append(MessageRow(uid, modseq, flags, message_id=mid))
    return hits


async def search_rows(store: MailStore, sel: SearchScope, key: SearchKey) -> list[MessageRow]:
    """The rows of the messages of ``sel`` that match ``key``, in UID order.

    Each row has at least its UID, MODSEQ and flags (and its message id); rows read from
    the database for criteria the folder index does not answer carry the search columns
    too. Messages not in ``sel.uids`` are never returned, even if the folder holds them.
    """
    if not sel.uids:
        return []
    indexed, headers = _index_needs(key)
    if indexed:
        return await _search_index(store, sel, key, headers)
    with_flags, without_flags = _flag_filters(key)
    found: list[MessageRow] = []
    # One read transaction for the rows and any body the criteria need.
    async with store.body_reader() as reader:
        rows = await reader.fetch_rows(sel.folder_id, sel.uids.ranges(), full=False,
                                       search=True, with_flags=with_flags,
                                       without_flags=without_flags)
        rows = [r for r in rows if sel.seq_of(r.uid) is not None]
        if rows and _has(key, SearchSaveDate):
            dates = await store.save_dates(sel.folder_id, [r.uid for r in rows])
            for row in rows:
                row.saved_at = dates.get(row.uid)
        matcher = _Matcher(sel, reader)
        headers = _reads_header(key)
        batch = _HEADER_BATCH if headers else max(len(rows), 1)
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            if headers:
                # The header blocks of a batch in one query rather than one read each.
                await reader.prefetch([(r.blob_id, 0, r.header_size) for r in chunk
                                       if r.blob_id is not None])
            for row in chunk:
                matcher.start(row)
                if await matcher.match(key, row):
                    found.append(row)
    return found


_HEADER_BATCH = 500


def _reads_header(key: SearchKey) -> bool:
    """Whether the criteria read the stored header (TEXT, or a header field the search
    columns do not answer)."""
    if isinstance(key, SearchText):
        return not key.body_only
    if isinstance(key, SearchHeader):
        return not _column_answers(key)
    if isinstance(key, SearchNot):
        return _reads_header(key.key)
    if isinstance(key, SearchOr):
        return _reads_header(key.left) or _reads_header(key.right)
    if isinstance(key, SearchAnd):
        return any(_reads_header(k) for k in key.keys)
    return False
