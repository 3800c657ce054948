"""FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 7162 CHANGEDSINCE/VANISHED).

Everything is served from the view precomputed at delivery (ENVELOPE, BODY, BODYSTRUCTURE,
part offsets) and from ranged reads of the encrypted body, which decrypt only the segments
touched: a FETCH never re-parses a message. One query per run of UIDs, with only the
columns the items need; then the byte spans every message's items need are read for a whole
batch of messages with one query (:meth:`storage.blobs.BlobStore.read_many`), and decoded
views are shared between sessions (:class:`mailstore.store.OpenedViews`). A FETCH that sets no flag
runs in a single read transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache

from imap.binary import binary_size, read_binary
from imap.commands import SELECTED, register
from imap.preview import preview
from imap.protocol import FetchAttr, ImapRefusal, SequenceSet, untagged_data
from imap.protocol import commands as c
from imap.protocol.response import Atom, encode_string
from imap.readproof import downloads_body, note_downloads, record_reads
from imap.selected import SelectedMailbox, uid_ranges
from imap.session import Done, Session
from mail import sections
from mail.bodystructure import basic_global
from mail.imapstring import wire_bytes
from mail.views import MessageView
from mailstore.folderindex import Entry
from mailstore.objectid import email_id
from mailstore.store import BodyReader, MessageRow, SpanCache

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIMPLE = frozenset({"UID", "FLAGS", "INTERNALDATE", "MODSEQ"})
_INDEXED = frozenset({"UID", "FLAGS", "MODSEQ"})
"""Items the in-memory folder index answers (see :mod:`mailstore.folderindex`)."""
_FIELDS = SpanCache(max_bytes=8 * 1024 * 1024, max_span=8 * 1024)
"""Answers to ``BODY[…HEADER.FIELDS (…)]`` by (blob, section, partial)."""


def internal_date(when: datetime | None) -> bytes:
    """RFC 9051 §9 date-time: ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (we store UTC)."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return (f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} '
            f'{when:%H:%M:%S} +0000"').encode("ascii")


@lru_cache(maxsize=256)
def _response_name(attr: FetchAttr) -> bytes:
    """The item name as answered, formatted once per distinct item rather than per message."""
    return attr.response_name().encode("utf-8")


def _literal(data: bytes) -> bytes:
    """A literal for BODY[…] and RFC822*: RFC 9051 §9 ``literal`` is ``*CHAR8``, which
    excludes NUL, and RFC 3516 §4.2 keeps ``literal8`` for BINARY responses. A stored NUL
    (binary content, RFC 3516 §4.3 APPEND of a literal8) is sent as octet 0x80, as Dovecot
    does: the size and offsets stay those of RFC822.SIZE and BODYSTRUCTURE, and BINARY[…]
    gives the exact octets."""
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return b"{%d}\r\n" % len(data) + data


def _literal8(data: bytes) -> bytes:
    # RFC 3516 §4.2 / RFC 9051 §4.3: decoded content holding NUL goes as literal8 ``~{n}``.
    prefix = b"~{%d}\r\n" if b"\x00" in data else b"{%d}\r\n"
    return prefix % len(data) + data


async def _binary(row: MessageRow, view: MessageView, attr: FetchAttr,
                  reader: BodyReader) -> bytes:
    """RFC 3516 §4.2: ``BINARY[part]<partial>``, the decoded part as (literal8) bytes."""
    blob = row.blob_id
    if blob is None:
        return b""

    async def read(start: int, end: int) -> bytes:
        return await reader.read(blob, start, max(0, end - start))

    part = attr.section.part if attr.section is not None else ()
    data = await read_binary(view, part, read) or b""
    if attr.partial is not None:
        data = sections.partial_bytes(data, attr.partial[0], attr.partial[1])
    return data


async def _binary_size(row: MessageRow, view: MessageView, attr: FetchAttr,
                       reader: BodyReader) -> int:
    blob = row.blob_id
    if blob is None:
        return 0

    async def read(start: int, end: int) -> bytes:
        return await reader.read(blob, start, max(0, end - start))

    return await binary_size(view, attr.section.part if attr.section else (), read)


async def _preview(view: MessageView, row: MessageRow, reader: BodyReader, utf8: bool
                   ) -> bytes:
    """RFC 8970 §3: the preview text, NIL once the body is purged."""
    blob = row.blob_id
    if blob is None:
        return b"NIL"

    async def read(start: int, end: int) -> bytes:
        return await reader.read(blob, start, max(0, end - start))

    return encode_string(await preview(view, read), utf8=utf8)


def _structure(rendered: str, utf8: bool) -> bytes:
    """BODY or BODYSTRUCTURE as the session's grammar allows: message/global has the
    message/rfc822 shape only after ENABLE UTF8=ACCEPT or IMAP4rev2 (RFC 9051 §7.5.2)."""
    data = wire_bytes(rendered)
    return data if utf8 else basic_global(data)


def _flags(flags: tuple[str, ...], recent: bool) -> bytes:
    items = list(flags) + (["\\Recent"] if recent else [])
    return b"(" + " ".join(items).encode("utf-8") + b")"


async def _section(view: MessageView, row: MessageRow, attr: FetchAttr,
                   reader: BodyReader) -> bytes:
    blob = row.blob_id
    if blob is None:
        return b""  # body purged after its retention period; the proofs remain
    sec = attr.section
    assert sec is not None
    spec = sections.Section(sec.part, sec.text or "", sec.fields)

    async def read(start: int, end: int) -> bytes:
        return await reader.read(blob, start, end - start)

    partial = None if attr.partial is None else (attr.partial[0], attr.partial[1])
    if not spec.filters_fields:
        return await sections.aread_section(view, spec, read, partial)
    # HEADER.FIELDS of a page of messages, as every client lists a folder: the answer of a
    # stored body never changes, so it is kept rather than filtered again next time.
    key = (blob, sec.part, sec.text, tuple(sec.fields or ()), partial)
    held = _FIELDS.get(key)
    if held is None:
        held = await sections.aread_section(view, spec, read, partial)
        _FIELDS.put(key, held)
    return held


async def _whole(view: MessageView, row: MessageRow, start: int, end: int | None,
                 reader: BodyReader) -> bytes:
    if row.blob_id is None:
        return b""
    stop = view.size if end is None else end
    return await reader.read(row.blob_id, start, max(0, stop - start))


def _row_item(name: str, row: MessageRow, sel: SelectedMailbox) -> bytes | None:
    """An item answered from the mailbox row alone, or None for the others."""
    if name == "UID":
        return b"UID %d" % row.uid
    if name == "FLAGS":
        return b"FLAGS " + _flags(row.flags, row.uid in sel.recent)
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internal_date(row.internal_date)
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % row.modseq  # RFC 7162 §3.1.4.1
    return None


def _finish(session: Session, sel: SelectedMailbox, seq: int, row: MessageRow,
            items: list[FetchAttr], out: list[bytes], flags_changed: bool) -> bytes:
    """Closes one FETCH response; a \\Seen set as a side effect is reported as FLAGS."""
    if flags_changed and not any(a.name == "FLAGS" for a in items):
        # RFC 9051 §6.4.5: setting \Seen as a side effect is reported as FLAGS.
        out.append(b"FLAGS " + _flags(row.flags, row.uid in sel.recent))
        if session.condstore and not any(a.name == "MODSEQ" for a in items):
            out.append(b"MODSEQ (%d)" % row.modseq)
    return b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n"


def _simple(session: Session, sel: SelectedMailbox, seq: int, row: MessageRow,
            items: list[FetchAttr], flags_changed: bool) -> bytes:
    """:func:`render` for items answered from the row alone (``UID FETCH 1:* (UID FLAGS)``
    on a large folder), without awaiting per message."""
    out = [item for a in items if (item := _row_item(a.name, row, sel)) is not None]
    return _finish(session, sel, seq, row, items, out, flags_changed)


async def _uid_flags(session: Session, sel: SelectedMailbox, uids: list[int],
                     entries: Mapping[int, Entry], names: str) -> None:
    """``FETCH … (UID FLAGS)`` or ``(FLAGS)`` — what clients send to resynchronise a whole
    folder — from the folder index in one loop: each distinct flag list is formatted once,
    sequence numbers are counted rather than looked up when every known message is asked
    for, and the responses are buffered in blocks rather than flushed per message."""
    formatted: dict[tuple[tuple[str, ...], bool], bytes] = {}
    recent = sel.recent
    block: list[bytes] = []
    numbered: Iterable[tuple[int | None, int]] = (
        enumerate(uids, 1) if len(uids) == len(sel.uids) else
        ((sel.seq_of(uid), uid) for uid in uids))
    for seq, uid in numbered:
        entry = entries.get(uid)
        if seq is None or entry is None:
            continue  # expunged meanwhile: nothing to say about it (RFC 9051 §6.4.5)
        key = (entry[1], uid in recent)
        flags = formatted.get(key)
        if flags is None:
            flags = formatted[key] = b"FLAGS " + _flags(*key)
        if names == "UID FLAGS":
            block.append(b"* %d FETCH (UID %d %s)\r\n" % (seq, uid, flags))
        elif names == "FLAGS UID":
            block.append(b"* %d FETCH (%s UID %d)\r\n" % (seq, flags, uid))
        else:
            block.append(b"* %d FETCH (%s)\r\n" % (seq, flags))
        if len(block) >= 1024:
            session.write(b"".join(block))
            block.clear()
            await session.flush(force=False)
    if block:
        session.write(b"".join(block))
    await session.flush(force=False)


async def render(session: Session, sel: SelectedMailbox, seq: int, row: MessageRow,
                 items: list[FetchAttr], reader: BodyReader, flags_changed: bool) -> bytes:
    """One ``* n FETCH (...)`` response, built as bytes (views may hold 8-bit text)."""
    out: list[bytes] = []
    view: MessageView | None = None
    if row.view is not None and any(a.name not in _SIMPLE for a in items):
        view = row.view
    for attr in items:
        name = attr.name
        simple = _row_item(name, row, sel)
        if simple is not None:
            out.append(simple)
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % row.size)
        elif name == "EMAILID":  # RFC 8474 §5.1
            out.append(b"EMAILID (%s)" % email_id(row.message_id).encode("ascii"))
        elif name == "THREADID":  # RFC 8474 §5.2: no threads computed
            out.append(b"THREADID NIL")
        elif name == "SAVEDATE":  # RFC 8514 §4
            out.append(b"SAVEDATE " + (b"NIL" if row.saved_at is None
                                       else internal_date(row.saved_at)))
        elif view is None:
            raise ImapRefusal("NO", "SERVERBUG", "Message structure is not available")
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + wire_bytes(view.envelope))
        elif name == "BODY":
            out.append(b"BODY " + _structure(view.body, session.utf8))
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + _structure(view.bodystructure, session.utf8))
        elif name == "RFC822":
            out.append(b"RFC822 " + _literal(await _whole(view, row, 0, None, reader)))
        elif name == "RFC822.HEADER":
            out.append(b"RFC822.HEADER " + _literal(
                await _whole(view, row, 0, view.text_start, reader)))
        elif name == "RFC822.TEXT":
            out.append(b"RFC822.TEXT " + _literal(
                await _whole(view, row, view.text_start, None, reader)))
        elif name == "BODY[]":
            data = await _section(view, row, attr, reader)
            out.append(_response_name(attr) + b" " + _literal(data))
        elif name == "BINARY[]":
            data = await _binary(row, view, attr, reader)
            out.append(_response_name(attr) + b" " + _literal8(data))
        elif name == "BINARY.SIZE[]":
            size = await _binary_size(row, view, attr, reader)
            out.append(_response_name(attr) + b" %d" % size)
        elif name == "PREVIEW":
            out.append(b"PREVIEW " + await _preview(view, row, reader, session.utf8))
    return _finish(session, sel, seq, row, items, out, flags_changed)


_BATCH_MESSAGES = 100
_BATCH_OCTETS = 4 * 1024 * 1024
"""Bounds of one prefetch: enough to answer a page of headers with one query, small enough
that a FETCH of many large bodies never holds more than a few MiB at once."""


def _span(view: MessageView, attr: FetchAttr) -> tuple[int, int] | None:
    """The byte span of the stored message an item reads (None: nothing, or not planned).

    The span covers every range the item's answer is built from, so one prefetch serves it;
    items not planned here (BINARY) read on their own, as before.
    """
    name = attr.name
    if name == "RFC822":
        return 0, view.size
    if name == "RFC822.HEADER":
        return 0, view.text_start
    if name == "RFC822.TEXT":
        return view.text_start, view.size
    if name != "BODY[]" or attr.section is None:
        return None
    sec = attr.section
    spec = sections.Section(sec.part, sec.text or "", sec.fields)
    ranges = sections.section_ranges(view, spec)
    if attr.partial is not None and not spec.filters_fields:
        ranges = sections.partial_ranges(ranges, attr.partial[0], attr.partial[1])
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _reads_body(attr: FetchAttr) -> bool:
    return attr.name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY[]")


Plan = list[tuple[int, list[tuple[int, int, int]]]]


def _plan(rows: list[MessageRow], items: list[FetchAttr]) -> Plan:
    """Rows cut into batches: index of the first row, and the ``(blob, start, end)`` spans
    to prefetch for the batch.

    A span larger than a whole batch is left to the per-read path, so memory stays bounded
    by :data:`_BATCH_OCTETS` whatever the messages.
    """
    batches: Plan = []
    spans: list[tuple[int, int, int]] = []
    first = count = octets = 0
    for n, row in enumerate(rows):
        if count >= _BATCH_MESSAGES or octets >= _BATCH_OCTETS:
            batches.append((first, spans))
            spans, first, count, octets = [], n, 0, 0
        count += 1
        if row.blob_id is None or row.view is None:
            continue
        view = row.view
        lo = hi = -1
        for attr in items:
            span = _span(view, attr)
            if span is None:
                continue
            lo = span[0] if lo < 0 else min(lo, span[0])
            hi = max(hi, span[1])
        if lo >= 0 and hi > lo and hi - lo <= _BATCH_OCTETS:
            spans.append((row.blob_id, lo, hi))
            octets += hi - lo
    batches.append((first, spans))
    return batches


async def _answer_rows(session: Session, sel: SelectedMailbox, rows: list[MessageRow],
                       items: list[FetchAttr], changed: set[int]) -> None:
    """Writes FETCH responses made of row items only (no view, no body)."""
    for row in rows:
        seq = sel.seq_of(row.uid)
        if seq is not None:
            session.write(_simple(session, sel, seq, row, items, row.uid in changed))
            await session.flush(force=False)


async def _answer(session: Session, sel: SelectedMailbox, rows: list[MessageRow],
                  items: list[FetchAttr], reader: BodyReader, changed: set[int],
                  full: bool) -> None:
    """Writes the FETCH responses; bodies are prefetched a batch at a time (see _plan)."""
    if not full:
        await _answer_rows(session, sel, rows, items, changed)
        return
    rows = [r for r in rows if sel.seq_of(r.uid) is not None]
    if rows and any(a.name == "SAVEDATE" for a in items):
        dates = await session.ctx.store.save_dates(sel.folder_id, [r.uid for r in rows])
        for row in rows:
            row.saved_at = dates.get(row.uid)
    plan = _plan(rows, items) if any(_reads_body(a) for a in items) else []
    starts = dict(plan)
    for n, row in enumerate(rows):
        spans = starts.get(n)
        if spans:
            await reader.prefetch(spans)
        seq = sel.seq_of(row.uid)
        assert seq is not None
        session.write(await render(session, sel, seq, row, items, reader, row.uid in changed))
        await session.flush(force=False)


async def _mark_seen(session: Session, sel: SelectedMailbox, rows: list[MessageRow]
                     ) -> set[int]:
    """Adds \\Seen where it lacks (RFC 9051 §6.4.5) to the flags as they are when written,
    not as they were read (another session may have changed them meanwhile: see
    :meth:`mailstore.store.MailStore.change_flags`); the rows get the stored flags. Returns
    the UIDs whose flags this FETCH changed."""
    def add_seen(uid: int, modseq: int, flags: tuple[str, ...]) -> tuple[str, ...] | None:
        return None if "\\Seen" in flags else (*flags, "\\Seen")

    uids = [r.uid for r in rows if "\\Seen" not in r.flags]
    if not uids:
        return set()
    modseq, state = await session.ctx.store.change_flags(sel.folder_id, uids, add_seen)
    changed = {uid for uid, (m, _) in state.items() if modseq and m == modseq}
    for row in rows:
        if row.uid in state:
            row.modseq, row.flags = state[row.uid]
        if row.uid in changed:
            sel.own_changes[row.uid] = modseq
    return changed


@register(c.Fetch, SELECTED)
async def fetch(session: Session, cmd: c.Fetch) -> Done | None:
    sel = session.selected
    assert sel is not None
    store = session.ctx.store
    items = list(cmd.items)
    if cmd.vanished and (not cmd.uid or not session.qresync or cmd.changedsince is None):
        # RFC 7162 §3.2.6: VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC.
        raise ImapRefusal("BAD", None, "VANISHED needs UID FETCH with CHANGEDSINCE after "
                          "ENABLE QRESYNC")
    if cmd.uid and not any(a.name == "UID" for a in items):
        items.insert(0, FetchAttr("UID"))  # RFC 9051 §6.4.9
    wants_modseq = cmd.changedsince is not None or any(a.name == "MODSEQ" for a in items)
    if wants_modseq:
        session.enable_condstore()  # RFC 7162 §3.1: implicit enable
        if not any(a.name == "MODSEQ" for a in items):
            items.append(FetchAttr("MODSEQ"))
    uids = sel.resolve(cmd.sequence_set, cmd.uid)
    if cmd.vanished and cmd.changedsince is not None:
        top = max(sel.uids[-1] if sel.uids else 0, 1)
        gone = [u for u in await store.vanished_since(sel.folder_id, cmd.changedsince)
                if cmd.sequence_set.contains(u, top)]
        if gone:
            session.write(untagged_data("VANISHED", Atom("(EARLIER)"),
                                        SequenceSet.from_ints(gone)))
    if not uids:
        return None
    full = any(a.name not in _SIMPLE for a in items)
    ranges = uid_ranges(uids)
    if all(a.name in _INDEXED for a in items):
        # UID, FLAGS and MODSEQ only (a client resynchronising a folder): the folder index.
        names = " ".join(a.name for a in items)
        if names in ("UID FLAGS", "FLAGS UID", "FLAGS") and cmd.changedsince is None:
            await _uid_flags(session, sel, uids, await store.index_entries(sel.folder_id),
                             names)
            return None
        rows = await store.index_rows(sel.folder_id, ranges, changed_since=cmd.changedsince)
        await _answer_rows(session, sel, rows, items, set())
        return None
    if not any(a.sets_seen for a in items):
        # Nothing is written and no read is proved: rows and bodies come from one read
        # transaction.
        async with store.body_reader() as reader:
            rows = await reader.fetch_rows(sel.folder_id, ranges, full=full,
                                           changed_since=cmd.changedsince)
            await _answer(session, sel, rows, items, reader, set(), full)
        if rows and any(downloads_body(a) for a in items):
            note_downloads(session, sel.folder_id, [r.uid for r in rows])
        return None
    rows = await store.fetch_rows(sel.folder_id, ranges, full=full,
                                  changed_since=cmd.changedsince)
    rows = [r for r in rows if sel.seq_of(r.uid) is not None]
    changed: set[int] = set()
    # RFC 4314 §4: without "s" the implicit \Seen is not set.
    if not sel.readonly and "s" in session.rights:
        changed = await _mark_seen(session, sel, rows)
    if rows:
        # The body is shown (read-only or not): the first reading is proved before it is.
        await record_reads(session, sel.folder_id, [r.uid for r in rows], "fetch")
    async with store.body_reader() as reader:
        await _answer(session, sel, rows, items, reader, changed, full)
    return None
