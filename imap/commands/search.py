"""SEARCH and UID SEARCH with ESEARCH results and SEARCHRES (RFC 9051 §6.4.4, RFC 4731,
RFC 5182, RFC 7162 §3.1.5 MODSEQ).

Flags, dates, sizes and the usual address/subject headers are answered from the columns
stored with each message (decoded at delivery). Other header fields, BODY and TEXT read the
stored message (headers only when enough); bodies are matched as stored, without decoding
base64 or quoted-printable parts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import cast

from imap.commands import SELECTED, register
from imap.objectid import message_row_of
from imap.protocol import (
    Atom,
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
    SequenceSet,
    untagged_data,
)
from imap.protocol import commands as c
from imap.protocol.response import Value
from imap.selected import SelectedMailbox
from imap.session import Done, Session
from mail.sections import filter_header_fields
from mail.views import decode_words
from mailstore.folderindex import HeaderTuple
from mailstore.store import BodyReader, MessageRow

_COLUMNS = {"subject": "subject", "from": "from_addr", "to": "to_addr", "cc": "cc_addr"}


def _column_answers(key: SearchHeader) -> bool:
    """Whether the stored Subject/From/To/Cc text answers ``key``.

    RFC 3501 §6.4.4: ``HEADER <field> ""`` matches every message that *has* the field;
    the stored text is empty both for an absent field and an empty one, so that question
    goes to the header itself."""
    return key.name.lower() in _COLUMNS and key.value != ""


def _uses_modseq(key: SearchKey) -> bool:
    if isinstance(key, SearchModseq):
        return True
    if isinstance(key, SearchNot):
        return _uses_modseq(key.key)
    if isinstance(key, SearchOr):
        return _uses_modseq(key.left) or _uses_modseq(key.right)
    if isinstance(key, SearchAnd):
        return any(_uses_modseq(k) for k in key.keys)
    return False


class _Matcher:
    """Evaluates a criteria tree against one message row, reading the body only if asked."""

    def __init__(self, sel: SelectedMailbox, reader: BodyReader) -> None:
        self.sel = sel
        self.reader = reader
        self.now = datetime.now(UTC)
        self._header: bytes | None = None
        self._text: str | None = None
        self._row: MessageRow | None = None
        self._headers: HeaderTuple | None = None  # the row's casefolded _COLUMNS
        self._leaves: dict[int, Predicate] = {}

    def start(self, row: MessageRow) -> None:
        self._row = row
        self._header = None
        self._text = None
        self._headers = None

    async def header(self) -> bytes:
        row = self._row
        assert row is not None
        if self._header is None:
            self._header = b"" if row.blob_id is None else await self.reader.read(
                row.blob_id, 0, row.header_size)
        return self._header

    async def whole(self) -> str:
        row = self._row
        assert row is not None
        if self._text is None:
            raw = b"" if row.blob_id is None else await self.reader.read(row.blob_id, 0, row.size)
            self._text = raw.decode("utf-8", "replace").casefold()
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
        if isinstance(key, SearchSaveDate):  # RFC 8514 §4.2, dates in UTC as INTERNALDATE
            saved = (row.saved_at or row.internal_date or self.now).astimezone(UTC).date()
            if key.op == "before":
                return saved < key.date
            return saved == key.date if key.op == "on" else saved >= key.date
        if isinstance(key, SearchObjectId):
            # RFC 8474 §6: THREADID is NIL for every message here, so it matches none.
            return key.kind == "EMAILID" and message_row_of(key.value) == row.message_id
        if isinstance(key, SearchText):
            needle = key.value.casefold()
            text = await self.whole()
            if key.body_only:
                row_ = self._row
                assert row_ is not None
                text = text[row_.header_size:] if row_.header_size <= len(text) else ""
            return needle in text
        return False


def _uses_savedate(key: SearchKey) -> bool:
    if isinstance(key, SearchSaveDate):
        return True
    if isinstance(key, SearchNot):
        return _uses_savedate(key.key)
    if isinstance(key, SearchOr):
        return _uses_savedate(key.left) or _uses_savedate(key.right)
    if isinstance(key, SearchAnd):
        return any(_uses_savedate(k) for k in key.keys)
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


def _compile(key: SearchKey, sel: SelectedMailbox) -> Predicate:  # noqa: C901, PLR0911
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


async def _search_index(session: Session, sel: SelectedMailbox, key: SearchKey,
                        headers: bool) -> list[MessageRow]:
    """SEARCH over the folder index: no row is read from the database, and the headers
    (when asked for) come from the message field cache."""
    store = session.ctx.store
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


async def run_search(session: Session, sel: SelectedMailbox, key: SearchKey) -> list[MessageRow]:
    if not sel.uids:
        return []
    indexed, headers = _index_needs(key)
    if indexed:
        return await _search_index(session, sel, key, headers)
    with_flags, without_flags = _flag_filters(key)
    found: list[MessageRow] = []
    # One read transaction for the rows and any body the criteria need.
    async with session.ctx.store.body_reader() as reader:
        rows = await reader.fetch_rows(sel.folder_id, sel.uids.ranges(), full=False,
                                       search=True, with_flags=with_flags,
                                       without_flags=without_flags)
        rows = [r for r in rows if sel.seq_of(r.uid) is not None]
        if rows and _uses_savedate(key):
            dates = await session.ctx.store.save_dates(sel.folder_id, [r.uid for r in rows])
            for row in rows:
                row.saved_at = dates.get(row.uid)
        matcher = _Matcher(sel, reader)
        for row in rows:
            matcher.start(row)
            if await matcher.match(key, row):
                found.append(row)
    return found


@register(c.Search, SELECTED)
async def search(session: Session, cmd: c.Search) -> Done | None:
    sel = session.selected
    assert sel is not None
    key = cmd.criteria or SearchAll()
    modseq_used = _uses_modseq(key)
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
    wanted = set(returns) or {"ALL"}
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
    if "COUNT" in wanted:
        out += ["COUNT", len(numbers)]
    if modseq_used and numbers:
        # RFC 7162 §3.1.5: with MIN and/or MAX alone, the MODSEQ of the messages returned;
        # with ALL or COUNT, the highest of every match.
        returned = found
        if not wanted & {"ALL", "COUNT"}:
            returned = [r for r, want in ((found[0], "MIN"), (found[-1], "MAX"))
                        if want in wanted]
        out += ["MODSEQ", max(r.modseq for r in returned)]
    session.write(untagged_data(*out))
    return None
