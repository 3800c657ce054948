"""The typed storage interface of the IMAP commands, and its SQLAlchemy Core implementation.

Command handlers in ``imap/commands/`` see only :class:`MailStore` (a ``typing.Protocol``, as
pymap does), so the protocol behaviour can be read without SQL and the SQL can change without
touching the commands. :class:`SqlMailStore` runs one query per FETCH range with only the
columns asked for, never ORM objects per message (docs/architecture.md §8). Every write
commits, then tells the :class:`~mail.changes.ChangeHub` so other sessions learn of it
(RFC 3501 §5.2).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from mail.changes import ChangeHub, account_key
from mail.views import MessageView
from mailstore.aclaudit import AclChange
from mailstore.folderindex import (
    FOLDER_COLUMNS,
    Entry,
    FolderIndex,
    FolderIndexes,
    HeaderFields,
    HeaderTuple,
)
from storage import annotations as annotation_rows
from storage import delegations as delegation_rows
from storage import folders as folder_rows
from storage.annotations import TooManyEntries
from storage.blobs import BlobStore
from storage.database import Database
from storage.errors import AlreadyExists
from storage.messages import (
    KEY_COLUMNS,
    WITH_KEYS,
    flags_text,
    open_fields,
    open_sealed,
    open_text,
)
from storage.metadata import VIEW
from storage.schema import (
    blobs,
    folder_acl,
    folder_messages,
    folders,
    lost_subscriptions,
    messages,
)

DELIMITER = folder_rows.DELIMITER
MAX_HELD_REACH = 100_000
"""Accounts whose delegations and ACL rows :meth:`SqlMailStore.shared_folders` keeps."""
Ranges = Sequence[tuple[int, int]]
Flags = tuple[str, ...]
FlagChange = Callable[[int, int, Flags], Flags | None]
"""``(uid, modseq, current flags) → new flags`` or None to leave the message alone."""


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """One mailbox as the commands need it (RFC 9051 §2.3.1.1 UIDVALIDITY, RFC 7162 modseq)."""

    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    recent_uid: int = 0  # RFC 3501 §2.3.2: UIDs above it are still \Recent for someone


@dataclass(slots=True)
class MessageRow:
    """The columns of one mailbox message a FETCH, STORE or SEARCH asked for."""

    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: datetime | None = None
    size: int = 0
    header_size: int = 0
    blob_id: int | None = None
    message_id: int = 0
    view: MessageView | None = None  # opened from the sealed column (see OpenedViews)
    subject: str | None = None
    from_addr: str | None = None
    to_addr: str | None = None
    cc_addr: str | None = None
    date_header: str | None = None
    # For SEARCH: the sealed fields and the data key columns that open them, kept to read
    # the indexed body text only when a BODY or TEXT criterion asks (BodyReader.indexed_text).
    sealed_fields: tuple[Any, ...] | None = None
    saved_at: datetime | None = None  # RFC 8514, read only when asked (save_dates)


@dataclass(frozen=True, slots=True)
class SharedFolder:
    """A folder of another account reachable through a delegation or a folder ACL row."""

    info: FolderInfo
    owner_id: int
    owner: str
    delegated_rights: str | None  # rights of the account-wide delegation, if any
    acl_rights: str | None  # rights of this folder's ACL row for the account, if any


@dataclass(frozen=True, slots=True)
class Change:
    """A row changed after a known mod-sequence: flags changed, new, or expunged."""

    uid: int
    modseq: int
    flags: tuple[str, ...]
    expunged: bool


@dataclass(frozen=True, slots=True)
class FolderCounts:
    """What STATUS reports besides the counters kept on the folder row."""

    messages: int
    unseen: int
    deleted: int
    size: int
    recent: int


@dataclass(frozen=True, slots=True)
class DateOrder:
    """A folder's live UIDs ascending by (sent instant, UID), and the sent instant (UTC
    epoch seconds: the Date field's, else the INTERNALDATE) of each of them."""

    uids: Sequence[int]
    sent: Mapping[int, int]

    def key(self, uid: int) -> tuple[int, int]:
        """The sort key of a UID of :attr:`uids`."""
        return self.sent[uid], uid


class BodyReader(Protocol):
    """Reads decrypted byte ranges of stored bodies inside one read transaction."""

    async def read(self, blob_id: int, offset: int, length: int) -> bytes: ...

    async def fetch_rows(
        self, folder_id: int, ranges: Ranges, *, full: bool, search: bool = False,
        changed_since: int | None = None, with_flags: Sequence[str] = (),
        without_flags: Sequence[str] = (),
    ) -> list[MessageRow]:
        """Live rows in ``ranges`` (see :meth:`MailStore.fetch_rows`); ``with_flags`` and
        ``without_flags`` narrow them in SQL (SEARCH on flags)."""
        ...

    def indexed_text(self, row: MessageRow) -> str | None:
        """The decoded, case-folded body text indexed at accept time for a row read with
        ``search=True`` (:mod:`mail.searchtext`), or None when it was not indexed."""
        ...

    async def prefetch(self, spans: Sequence[tuple[int, int, int]]) -> None:
        """Loads ``(blob_id, start, end)`` spans with one query; later :meth:`read` calls
        inside a loaded span are answered from memory until the next prefetch."""
        ...


class MailStore(Protocol):
    """What IMAP commands need from storage; one instance serves every session."""

    async def list_folders(self, account_id: int) -> list[FolderInfo]: ...

    async def get_folder(self, account_id: int, name: str) -> FolderInfo | None: ...

    async def create_folder(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> FolderInfo: ...

    async def delete_folder(self, folder_id: int) -> None: ...

    async def rename_folder(self, folder_id: int, new_name: str) -> None: ...

    async def set_subscribed(self, folder_id: int, subscribed: bool) -> None: ...

    async def counts(self, folder_id: int, recent_above: int | None = None, *,
                     size: bool = True) -> FolderCounts:
        """STATUS counters; without ``size`` (then reported as 0) from the folder's index."""
        ...

    async def snapshot(self, folder_id: int) -> tuple[FolderInfo, Mapping[int, Entry]]:
        """The folder row and UID → ``(modseq, flags, message id)`` of every live message,
        consistent with each other (a live read-only view, to use before the next await)."""
        ...

    async def index_rows(
        self, folder_id: int, ranges: Ranges, *, changed_since: int | None = None,
        headers: bool = False,
    ) -> list[MessageRow]:
        """Live rows in ``ranges`` with UID, MODSEQ and flags only (``headers``: also the
        decoded Subject/From/To/Cc), answered from the folder's in-memory index."""
        ...

    async def index_entries(self, folder_id: int) -> Mapping[int, Entry]:
        """UID → ``(modseq, flags, message id)`` of every live message, from the folder's
        index brought up to date: a live read-only view, to use before the next await."""
        ...

    async def date_order(self, folder_id: int) -> DateOrder:
        """The folder's live UIDs ascending by sent instant then UID (RFC 5256 SORT DATE),
        from its index: a shared read-only view, to use before the next await."""
        ...

    async def header_fields(self, message_ids: Sequence[int]) -> dict[int, HeaderTuple]:
        """Message id → casefolded ``(subject, from, to, cc)`` (SEARCH on those headers)."""
        ...

    async def changes_since(self, folder_id: int, modseq: int) -> tuple[int, list[Change]]: ...

    async def vanished_since(self, folder_id: int, modseq: int) -> list[int]: ...

    async def fetch_rows(
        self, folder_id: int, ranges: Ranges, *, full: bool, search: bool = False,
        changed_since: int | None = None,
    ) -> list[MessageRow]: ...

    def body_reader(self) -> AbstractAsyncContextManager[BodyReader]: ...

    async def store_flags(self, folder_id: int, new_flags: dict[int, tuple[str, ...]]) -> int:
        """Sets the flags of several UIDs under one new MODSEQ (returned)."""
        ...

    async def change_flags(self, folder_id: int, uids: Sequence[int],
                           compute: FlagChange) -> tuple[int, dict[int, tuple[int, Flags]]]:
        """Read-modify-write of flags in one write transaction (see SqlMailStore)."""
        ...

    async def expunge(self, folder_id: int, uids: Sequence[int]) -> int: ...

    async def copy(
        self, folder_id: int, uids: Sequence[int], dest_id: int, *, move: bool = False
    ) -> list[tuple[int, int]]: ...

    async def storage_used(self, account_id: int) -> int: ...

    async def acl(self, folder_id: int) -> list[tuple[str, str]]: ...

    async def set_acl(self, folder_id: int, identifier: str, rights: str | None, *,
                      change: AclChange | None = None) -> None: ...

    async def shared_folders(self, account_id: int, address: str, *,
                             access_version: int | None = None) -> list[SharedFolder]: ...

    async def delegates(self, owner_id: int) -> list[tuple[str, str]]: ...

    async def claim_recent(self, folder_id: int, up_to_uid: int) -> int: ...

    async def recent_floor(self, folder_id: int) -> int: ...

    async def lost_subscriptions(self, account_id: int) -> list[str]: ...

    async def forget_subscription(self, account_id: int, name: str) -> bool: ...

    async def save_dates(self, folder_id: int, uids: Sequence[int]
                         ) -> dict[int, datetime | None]:
        """RFC 8514: when each message of ``uids`` was saved in the folder."""
        ...

    async def annotations(self, account_id: int, folder_id: int | None,
                          names: Sequence[str], depth: int | None) -> dict[str, bytes]:
        """RFC 5464: entries of ``account_id`` on a mailbox (None: the server) named in
        ``names`` or below them, ``depth`` levels (None: all)."""
        ...

    async def set_annotations(self, folder_id: int | None,
                              values: Mapping[int, Mapping[str, bytes | None]],
                              max_entries: int) -> None:
        """RFC 5464 SETMETADATA: entries by account, in one transaction (all or nothing);
        :class:`TooManyEntries` over the limit."""
        ...


def _info(row: Any) -> FolderInfo:
    return FolderInfo(
        id=int(row.id), name=row.name, special_use=row.special_use,
        uidvalidity=int(row.uidvalidity), uidnext=int(row.uidnext),
        highestmodseq=int(row.highestmodseq), subscribed=bool(row.subscribed),
        recent_uid=int(row.recent_uid),
    )


def _flags(text: str | None) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


async def _claim_lost_subscription(conn: Any, account_id: int, name: str) -> bool:
    """Whether ``name`` was subscribed while it had no mailbox; the mailbox now created
    under it carries that subscription (the lost one is forgotten)."""
    result = await conn.execute(delete(lost_subscriptions).where(
        lost_subscriptions.c.account_id == account_id, lost_subscriptions.c.name == name))
    return bool(result.rowcount)


def _in_ranges(ranges: Ranges) -> Any:
    """A WHERE clause for UIDs in the given inclusive ranges (one range → BETWEEN)."""
    uid = folder_messages.c.uid
    clauses = [uid == a if a == b else and_(uid >= a, uid <= b) for a, b in ranges]
    return clauses[0] if len(clauses) == 1 else or_(*clauses)


def _chunks(ranges: Ranges, size: int = 200) -> Iterable[Ranges]:
    for i in range(0, len(ranges), size):
        yield ranges[i : i + size]


_LIVE = folder_messages.c.expunged_modseq.is_(None)


def _has_flag(flag: str) -> Any:
    """Rows holding ``flag`` (case-insensitive, RFC 9051 §2.3.2), by whole space-separated
    word: flags are atoms, so a word match is exact."""
    flags = func.coalesce(folder_messages.c.flags, literal(""))
    padded = func.lower(literal(" ") + flags + literal(" "))
    return padded.contains(f" {flag.lower()} ", autoescape=True)


# Statements of the hot paths, built once (see _one_range).
_FOLDER_BY_NAME = select(*FOLDER_COLUMNS).where(
    folders.c.account_id == bindparam("account"), folders.c.name == bindparam("name"))
_FLAGS_OF = select(folder_messages.c.uid, folder_messages.c.modseq, folder_messages.c.flags).where(
    folder_messages.c.folder_id == bindparam("folder"),
    folder_messages.c.uid.in_(bindparam("uids", expanding=True)), _LIVE)
_FLAGS_FOR_UPDATE = _FLAGS_OF.with_for_update()
_SET_FLAGS = (
    update(folder_messages)
    .where(folder_messages.c.folder_id == bindparam("folder"),
           folder_messages.c.uid.in_(bindparam("uids", expanding=True)), _LIVE)
    .values(flags=bindparam("text"), modseq=bindparam("modseq"))
)


class OpenedViews:
    """IMAP views opened from their sealed column, the most recently used kept decoded.

    The view (ENVELOPE, BODYSTRUCTURE with file names, section offsets) is stored sealed
    under the body's data key (:mod:`storage.metadata`); unwrapping that key, opening and
    decoding cost more than serving the answer, so a FETCH that pages through a mailbox
    finds most views here. The key is the sealed value's random nonce and authentication
    tag, which name one sealing of one view: an entry never answers for another message.
    """

    def __init__(self, store: BlobStore, capacity: int = 16384,
                 fields_capacity: int = 100_000) -> None:
        self.store = store
        self.capacity = capacity
        self._views: OrderedDict[bytes, MessageView] = OrderedDict()
        self.fields_capacity = fields_capacity
        self._fields: OrderedDict[bytes, list[str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._views)

    def held(self, sealed: bytes) -> MessageView | None:
        """The view sealed as ``sealed`` if it was opened recently (no key needed)."""
        key = bytes(sealed[:12]) + bytes(sealed[-16:])
        got = self._views.get(key)
        if got is not None:
            self._views.move_to_end(key)
        return got

    def open(self, sealed: bytes, blob_id: int | None, key_id: str | None,
             wrapped_key: bytes | None, content_sha256: str | None) -> MessageView | None:
        """Opens and decodes a view not :meth:`held`, and keeps it."""
        text = open_sealed(self.store, VIEW, sealed, blob_id, key_id, wrapped_key,
                           content_sha256)
        if text is None:
            return None
        views = self._views
        got = views[bytes(sealed[:12]) + bytes(sealed[-16:])] = MessageView.from_json(
            text.decode("utf-8", "surrogatepass"))
        if len(views) > self.capacity:
            views.popitem(last=False)
        return got

    def fields(self, sealed: bytes | None, blob_id: int | None, key_id: str | None,
               wrapped_key: bytes | None, content_sha256: str | None) -> list[str | None]:
        """The search fields of a message (:data:`storage.messages.SEARCH_FIELDS`), kept
        opened too: SEARCH on criteria the folder index does not answer (sent dates, other
        headers, bodies) reads them for every message of the folder, command after command.
        """
        if sealed is None:
            return open_fields(self.store, None, None, None, None, None)
        key = bytes(sealed[:12]) + bytes(sealed[-16:])
        held = self._fields
        got = held.get(key)
        if got is not None:
            held.move_to_end(key)
            return got
        got = held[key] = open_fields(self.store, sealed, blob_id, key_id, wrapped_key,
                                      content_sha256)
        if len(held) > self.fields_capacity:
            held.popitem(last=False)
        return got

    async def open_missing(self, conn: AsyncConnection,
                           pending: list[tuple[MessageRow, bytes]]) -> None:
        """Opens the views of ``pending`` rows, reading the data keys of their bodies with
        one query (a FETCH whose views are all held reads no key at all)."""
        wanted = sorted({row.blob_id for row, _ in pending if row.blob_id is not None})
        keys: dict[int, Any] = {}
        for i in range(0, len(wanted), 500):
            for r in await conn.execute(_BLOB_KEYS, {"ids": wanted[i : i + 500]}):
                keys[int(r[0])] = r[1:]
        for row, sealed in pending:
            found = keys.get(row.blob_id) if row.blob_id is not None else None
            if found is not None:
                row.view = self.open(sealed, row.blob_id, *found)


# storage_used: the marks of an account's folders, a folder's live octets as of a mark
# (UID below its UIDNEXT, not expunged at its HIGHESTMODSEQ), and the change of those octets
# between two marks (filed since: +size; expunged since: -size). A tombstone's MODSEQ is its
# expunge MODSEQ (flags of expunged rows never change), so "modseq > old" finds both kinds
# through ix_folder_messages_folder_id_modseq.
# COPY/MOVE and EXPUNGE, built once (no statement composed and keyed per command).
_COPY_SOURCE = select(
    folder_messages.c.uid, folder_messages.c.message_id, folder_messages.c.flags,
    folder_messages.c.internal_date,
).where(folder_messages.c.folder_id == bindparam("folder"),
        folder_messages.c.uid.in_(bindparam("uids", expanding=True)), _LIVE)
_FILE_COPY = folder_messages.insert()
_TOMBSTONE = (
    update(folder_messages)
    .where(folder_messages.c.folder_id == bindparam("folder"),
           folder_messages.c.uid.in_(bindparam("uids", expanding=True)), _LIVE)
    .values(expunged_modseq=bindparam("mark"), modseq=bindparam("mark"))
)

# Change log, \\Recent mark: read by every SELECT, NOOP and IDLE wake-up.
_HIGHEST = select(folders.c.highestmodseq).where(folders.c.id == bindparam("folder"))
_CHANGED_SINCE = select(
    folder_messages.c.uid, folder_messages.c.modseq, folder_messages.c.flags,
    folder_messages.c.expunged_modseq,
).where(folder_messages.c.folder_id == bindparam("folder"),
        folder_messages.c.modseq > bindparam("modseq")).order_by(folder_messages.c.uid)
_RECENT_UID = select(folders.c.recent_uid).where(folders.c.id == bindparam("folder"))
_MOVE_RECENT = (
    update(folders)
    .where(folders.c.id == bindparam("folder"), folders.c.recent_uid == bindparam("previous"))
    .values(recent_uid=bindparam("mark"))
)

_MAX_HELD_COUNTS = 10_000  # folders whose STATUS counters are kept (a cache only)

_FOLDER_MARKS = select(folders.c.id, folders.c.uidvalidity, folders.c.highestmodseq,
                       folders.c.uidnext).where(folders.c.account_id == bindparam("account"))
_LIVE_AT_MARK = and_(
    folder_messages.c.folder_id == bindparam("folder"),
    folder_messages.c.uid < bindparam("next"),
    or_(folder_messages.c.expunged_modseq.is_(None),
        folder_messages.c.expunged_modseq > bindparam("highest")),
)
_FOLDER_SIZE = (
    select(func.coalesce(func.sum(messages.c.size), 0))
    .select_from(folder_messages.join(messages, messages.c.id == folder_messages.c.message_id))
    .where(_LIVE_AT_MARK)
)
_SIZE_CHANGE = (
    select(func.sum(case(
        (folder_messages.c.uid >= bindparam("old_next"), messages.c.size),
        else_=-messages.c.size)))
    .select_from(folder_messages.join(messages, messages.c.id == folder_messages.c.message_id))
    .where(
        folder_messages.c.folder_id == bindparam("folder"),
        folder_messages.c.modseq > bindparam("old_highest"),
        or_(
            # Filed since the old mark, live at the new one.
            and_(folder_messages.c.uid >= bindparam("old_next"), _LIVE_AT_MARK),
            # Live at the old mark, expunged by the new one.
            and_(folder_messages.c.uid < bindparam("old_next"),
                 folder_messages.c.expunged_modseq > bindparam("old_highest"),
                 folder_messages.c.expunged_modseq <= bindparam("highest")),
        ),
    )
)

_BLOB_KEYS = select(blobs.c.id, *KEY_COLUMNS).where(
    blobs.c.id.in_(bindparam("ids", expanding=True)))


def _columns(full: bool, search: bool) -> list[Any]:
    """The columns of :func:`_fetch_rows`, in the order its row loop unpacks them."""
    fm = folder_messages
    cols: list[Any] = [fm.c.uid, fm.c.modseq, fm.c.flags, fm.c.internal_date]
    if full or search:
        cols += [messages.c.size, messages.c.header_size, messages.c.blob_id, fm.c.message_id]
    if full:
        cols.append(messages.c.sealed_view)
    if search:
        cols += [messages.c.sealed_fields, *KEY_COLUMNS]
    return cols


def _rows_of(stmt: Any, full: bool, search: bool) -> Any:
    """``stmt`` ordered by UID, joined to the messages when their columns are read (and,
    for SEARCH, to the blob row holding their data key: views are mostly held opened)."""
    fm = folder_messages
    stmt = stmt.order_by(fm.c.uid)
    if search:
        stmt = stmt.select_from(fm.join(WITH_KEYS, messages.c.id == fm.c.message_id))
    elif full:
        stmt = stmt.select_from(fm.join(messages, messages.c.id == fm.c.message_id))
    return stmt


def _one_range(full: bool) -> Any:
    """Rows of one UID range of one folder, with bound parameters (see :func:`_fetch_rows`)."""
    fm = folder_messages
    return _rows_of(select(*_columns(full, False)).where(
        fm.c.folder_id == bindparam("folder"), _LIVE,
        fm.c.uid >= bindparam("lo"), fm.c.uid <= bindparam("hi"),
    ), full, False)


_ONE_RANGE = _one_range(full=False)
_ONE_RANGE_FULL = _one_range(full=True)


async def _fetch_rows(
    conn: AsyncConnection, views: OpenedViews, folder_id: int, ranges: Ranges, *, full: bool,
    search: bool, changed_since: int | None, with_flags: Sequence[str] = (),
    without_flags: Sequence[str] = (),
) -> list[MessageRow]:
    """The query of :meth:`SqlMailStore.fetch_rows` on an open read transaction.

    Rows come back as plain tuples and are unpacked by position in one loop: a
    ``UID FETCH 1:* (UID FLAGS)`` of a 100,000 message folder builds nothing else per row.
    """
    fm = folder_messages
    out: list[MessageRow] = []
    append = out.append
    # A folder holds few distinct flag texts: each is split once, and rows share the tuple.
    parsed: dict[str | None, tuple[str, ...]] = {None: (), "": ()}

    def flags_of(text: str | None) -> tuple[str, ...]:
        got = parsed.get(text)
        if got is None:
            got = parsed[text] = tuple(text.split()) if text else ()
        return got

    results: list[Sequence[Any]] = []
    pending: list[tuple[MessageRow, bytes]] = []  # views to open once the keys are read
    if (len(ranges) == 1 and changed_since is None and not with_flags and not without_flags
            and not search):
        # The common shape (one range: a page of headers, one message) as a statement built
        # once: building and keying a new statement cost more than running it.
        lo, hi = ranges[0]
        stmt = _ONE_RANGE_FULL if full else _ONE_RANGE
        results.append((await conn.execute(
            stmt, {"folder": folder_id, "lo": lo, "hi": hi})).all())
    else:
        cols = _columns(full, search)
        for chunk in _chunks(ranges):
            cond = [fm.c.folder_id == folder_id, _LIVE, _in_ranges(chunk)]
            if changed_since is not None:
                cond.append(fm.c.modseq > changed_since)  # RFC 7162 §3.1.4.1
            cond += [_has_flag(f) for f in with_flags]
            cond += [~_has_flag(f) for f in without_flags]
            stmt = _rows_of(select(*cols).where(*cond), full, search)
            results.append((await conn.execute(stmt)).all())
    for result in results:
        if not (full or search):
            for uid, modseq, flags, date in result:
                append(MessageRow(uid, modseq, flags_of(flags), date))
            continue
        k = 9 if full else 8  # sealed fields, then the data key columns (SEARCH)
        for r in result:
            row = MessageRow(r[0], r[1], flags_of(r[2]), r[3],
                             int(r[4]), int(r[5]), r[6], int(r[7]))
            if full:
                sealed = r[8]
                if sealed is not None:
                    row.view = views.held(sealed)
                    if row.view is None:
                        if search:
                            row.view = views.open(sealed, r[6], *r[k + 1 : k + 4])
                        else:
                            pending.append((row, sealed))
            if search:
                (row.subject, row.from_addr, row.to_addr, row.cc_addr,
                 row.date_header) = views.fields(r[k], r[6], *r[k + 1 : k + 4])
                row.sealed_fields = (r[k], r[6], *r[k + 1 : k + 4])
            append(row)
    if pending:
        await views.open_missing(conn, pending)
    return out


class SpanCache:
    """Decrypted small spans (typically header blocks) of recently fetched bodies.

    A stored body never changes (content-addressed, one blob per content), so a span read
    once answers every later FETCH of the same items — the common case of clients paging
    through headers. Only spans up to ``max_span`` octets are kept, and at most
    ``max_bytes`` in all, least recently used first out.
    """

    def __init__(self, max_bytes: int = 8 * 1024 * 1024, max_span: int = 16 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_span = max_span
        self.size = 0
        self._spans: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        data = self._spans.get(key)
        if data is not None:
            self._spans.move_to_end(key)
        return data

    def put(self, key: Hashable, data: bytes) -> None:
        if len(data) > self.max_span or key in self._spans:
            return
        self._spans[key] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, old = self._spans.popitem(last=False)
            self.size -= len(old)

    def __len__(self) -> int:
        return len(self._spans)


class _Reader:
    """Body reads of one FETCH or SEARCH; spans prefetched in one query serve later reads.

    Only the last prefetched batch is kept, so memory stays bounded by what the caller
    asks for at once (the FETCH batches by size).
    """

    def __init__(self, db: Database, conn: AsyncConnection, cache: SpanCache,
                 views: OpenedViews) -> None:
        self._db = db
        self._conn = conn
        self._cache = cache
        self._views = views
        self._spans: dict[int, tuple[int, bytes]] = {}

    async def fetch_rows(
        self, folder_id: int, ranges: Ranges, *, full: bool, search: bool = False,
        changed_since: int | None = None, with_flags: Sequence[str] = (),
        without_flags: Sequence[str] = (),
    ) -> list[MessageRow]:
        """:meth:`SqlMailStore.fetch_rows` in this read transaction (one less transaction
        for a FETCH or SEARCH that changes nothing)."""
        if not ranges:
            return []
        return await _fetch_rows(self._conn, self._views, folder_id, ranges, full=full,
                                 search=search, changed_since=changed_since,
                                 with_flags=with_flags, without_flags=without_flags)

    def indexed_text(self, row: MessageRow) -> str | None:
        if row.sealed_fields is None:
            return None
        return open_text(self._db.blobs, *row.sealed_fields)

    async def prefetch(self, spans: Sequence[tuple[int, int, int]]) -> None:
        self._spans = {}
        cache = self._cache
        wanted: list[tuple[int, int, int | None]] = []
        for blob_id, start, end in spans:
            held = cache.get((blob_id, start, end))
            if held is not None:
                self._spans[blob_id] = (start, held)
            else:
                wanted.append((blob_id, start, max(0, end - start)))
        if not wanted:
            return
        for (blob_id, start, length), data in zip(
            wanted, await self._db.blobs.read_many(self._conn, wanted), strict=True
        ):
            self._spans[blob_id] = (start, data)
            cache.put((blob_id, start, start + (length or 0)), data)

    async def read(self, blob_id: int, offset: int, length: int) -> bytes:
        held = self._spans.get(blob_id)
        if held is not None:
            start, data = held
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        return await self._db.blobs.read(self._conn, blob_id, offset, length)


class SqlMailStore:
    """:class:`MailStore` over the project database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, changes: ChangeHub, *, index_messages: int = 500_000,
                 header_fields: int = 200_000) -> None:
        self._db = db
        self._changes = changes
        self.indexes = FolderIndexes(db, changes, index_messages)
        self.fields = HeaderFields(db, header_fields)
        # (folder, since-modseq, hub generation) → the query in flight, shared by every
        # session woken by the same change (10,000 IDLE sessions cost one query, not 10,000).
        self._inflight: dict[tuple[int, int, int], asyncio.Task[tuple[int, list[Change]]]] = {}
        # Folder → the highest \Recent mark seen; the mark only grows (see claim_recent).
        self._recent_marks: dict[int, int] = {}
        # Folder → ((UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT) exact at, octets): storage_used.
        self._folder_sizes: dict[int, tuple[tuple[int, int, int], int]] = {}
        # Folder → ((index MODSEQ, messages, \\Recent floor), STATUS counters): see counts.
        self._counts: dict[int, tuple[tuple[int, int, int], FolderCounts]] = {}
        self._claim_lock = asyncio.Lock()
        # Account → ((access version, address) read at, its delegations and ACL rows): see
        # shared_folders.
        self._reach: dict[int, tuple[tuple[int, str], delegation_rows.Reach]] = {}
        self.spans = SpanCache()
        self.views = OpenedViews(db.blobs)

    # -- folders -------------------------------------------------------------------
    async def list_folders(self, account_id: int) -> list[FolderInfo]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*FOLDER_COLUMNS).where(folders.c.account_id == account_id)
                .order_by(folders.c.name)
            )
            return [_info(r) for r in rows]

    async def get_folder(self, account_id: int, name: str) -> FolderInfo | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_FOLDER_BY_NAME, {"account": account_id, "name": name})
                   ).first()
            return None if row is None else _info(row)

    async def create_folder(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> FolderInfo:
        """Creates ``name`` and any missing parent (RFC 9051 §6.3.4 "SHOULD create"), so
        there is never a non-selectable intermediate level that hides mail from clients.

        RFC 3501 §6.3.3 / RFC 9051 §6.3.4: CREATE does not subscribe. A created mailbox (or
        parent) is subscribed only when its name already was (a subscription outlives its
        mailbox, RFC 3501 §6.3.6)."""
        parts = name.split(DELIMITER)
        async with self._db.begin() as conn:
            for i in range(1, len(parts)):
                parent = DELIMITER.join(parts[:i])
                if await folder_rows.get(conn, account_id, parent) is None:
                    await folder_rows.create(
                        conn, account_id, parent,
                        subscribed=await _claim_lost_subscription(conn, account_id, parent))
            created = await folder_rows.create(
                conn, account_id, name, special_use=special_use,
                subscribed=await _claim_lost_subscription(conn, account_id, name))
        self._changes.changed([account_key(account_id)])
        return FolderInfo(
            id=created.id, name=created.name, special_use=created.special_use,
            uidvalidity=created.uidvalidity, uidnext=created.uidnext,
            highestmodseq=created.highestmodseq, subscribed=created.subscribed,
        )

    async def delete_folder(self, folder_id: int) -> None:
        """Deletes the folder; a subscription to it is kept as a lost one (RFC 3501 §6.3.6:
        subscriptions do not depend on the mailbox existing)."""
        async with self._db.begin() as conn:
            row = (await conn.execute(
                select(folders.c.account_id, folders.c.name, folders.c.subscribed)
                .where(folders.c.id == folder_id)
            )).first()
            await folder_rows.delete_folder(conn, folder_id)
            if row is not None and row.subscribed:
                await conn.execute(delete(lost_subscriptions).where(
                    lost_subscriptions.c.account_id == row.account_id,
                    lost_subscriptions.c.name == row.name))
                await conn.execute(lost_subscriptions.insert().values(
                    account_id=row.account_id, name=row.name))
        self._recent_marks.pop(folder_id, None)  # SQLite may give the id to a new folder
        self._folder_sizes.pop(folder_id, None)
        self.indexes.drop(folder_id)
        self._changes.changed([folder_id] + ([account_key(row.account_id)] if row else []))

    async def rename_folder(self, folder_id: int, new_name: str) -> None:
        async with self._db.begin() as conn:
            account_id = (
                await conn.execute(select(folders.c.account_id).where(folders.c.id == folder_id))
            ).scalar_one()
            parts = new_name.split(DELIMITER)
            for i in range(1, len(parts)):
                parent = DELIMITER.join(parts[:i])
                if await folder_rows.get(conn, account_id, parent) is None:
                    await folder_rows.create(
                        conn, account_id, parent,
                        subscribed=await _claim_lost_subscription(conn, account_id, parent))
            await folder_rows.rename(conn, folder_id, new_name)
        self._changes.changed([folder_id, account_key(account_id)])

    async def set_subscribed(self, folder_id: int, subscribed: bool) -> None:
        async with self._db.begin() as conn:
            await folder_rows.set_subscribed(conn, folder_id, subscribed)
            account_id = (await conn.execute(
                select(folders.c.account_id).where(folders.c.id == folder_id))).scalar()
        if account_id is not None:
            self._changes.changed([account_key(int(account_id))])

    async def counts(self, folder_id: int, recent_above: int | None = None, *,
                     size: bool = True) -> FolderCounts:
        """MESSAGES, UNSEEN, DELETED, RECENT and (with ``size``) SIZE of a folder.

        Without ``size``, the counters come from the folder's in-memory index, brought up
        to date by MODSEQ like SELECT's, and are kept per (index MODSEQ, \\Recent floor):
        a STATUS of an unchanged folder runs no query over its rows (it used to count them
        all, joined with their messages, on every STATUS). SIZE needs the messages' octets,
        which the index does not hold: then the rows are counted in the database.
        """
        if not size:
            index = await self.indexes.get(folder_id)
            if index is not None:
                floor = recent_above if recent_above is not None \
                    else await self.recent_floor(folder_id)
                return self._index_counts(index, floor)
        fm = folder_messages
        async with self._db.scan() as conn:
            if recent_above is None:
                recent_above = int((await conn.execute(
                    select(folders.c.recent_uid).where(folders.c.id == folder_id)
                )).scalar() or 0)
            floor = recent_above
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(messages.c.size), 0),
                        func.count().filter(~fm.c.flags.contains("\\Seen", autoescape=True)),
                        func.count().filter(fm.c.flags.contains("\\Deleted", autoescape=True)),
                        func.count().filter(fm.c.uid > floor),
                    )
                    .select_from(fm.join(messages, messages.c.id == fm.c.message_id))
                    .where(fm.c.folder_id == folder_id, _LIVE)
                )
            ).one()
        return FolderCounts(messages=int(row[0]), size=int(row[1]), unseen=int(row[2]),
                            deleted=int(row[3]), recent=int(row[4]))

    def _index_counts(self, index: FolderIndex, floor: int) -> FolderCounts:
        key = (index.modseq, len(index.entries), floor)
        held = self._counts.get(index.folder_id)
        if held is not None and held[0] == key:
            return held[1]
        unseen = deleted = recent = 0
        for uid, (_, flags, _) in index.entries.items():
            if "\\Seen" not in flags:
                unseen += 1
            if "\\Deleted" in flags:
                deleted += 1
            if uid > floor:
                recent += 1
        counts = FolderCounts(messages=len(index.entries), size=0, unseen=unseen,
                              deleted=deleted, recent=recent)
        if len(self._counts) >= _MAX_HELD_COUNTS:
            self._counts.clear()  # a cache only: start again rather than grow
        self._counts[index.folder_id] = (key, counts)
        return counts

    # -- selected mailbox state ----------------------------------------------------
    async def _index(self, folder_id: int) -> FolderIndex:
        index = await self.indexes.get(folder_id)
        if index is None:
            raise LookupError(f"folder {folder_id} does not exist")
        return index

    async def snapshot(self, folder_id: int) -> tuple[FolderInfo, Mapping[int, Entry]]:
        """From the folder's index, brought up to date first."""
        index = await self._index(folder_id)
        info = _info(index.row)
        entries = index.entries
        last = next(reversed(entries), 0)
        # The rows may have been read after the folder row (PostgreSQL): never announce a
        # HIGHESTMODSEQ or UIDNEXT below what the rows show.
        # The \Recent mark moves without a MODSEQ: this process's claims are known here.
        recent = max(info.recent_uid, self._recent_marks.get(folder_id, 0))
        if (index.modseq > info.highestmodseq or last >= info.uidnext
                or recent != info.recent_uid):
            info = FolderInfo(
                id=info.id, name=info.name, special_use=info.special_use,
                uidvalidity=info.uidvalidity, uidnext=max(info.uidnext, last + 1),
                highestmodseq=max(info.highestmodseq, index.modseq),
                subscribed=info.subscribed, recent_uid=recent)
        return info, entries

    async def index_rows(
        self, folder_id: int, ranges: Ranges, *, changed_since: int | None = None,
        headers: bool = False,
    ) -> list[MessageRow]:
        if not ranges:
            return []
        index = await self._index(folder_id)
        found = index.in_ranges(ranges, changed_since)
        rows = [MessageRow(uid, modseq, flags, message_id=mid)
                for uid, (modseq, flags, mid) in found]
        if headers and rows:
            fields = await self.fields.many([r.message_id for r in rows])
            for row in rows:
                row.subject, row.from_addr, row.to_addr, row.cc_addr = fields[row.message_id]
        return rows

    async def index_entries(self, folder_id: int) -> Mapping[int, Entry]:
        return (await self._index(folder_id)).entries

    async def date_order(self, folder_id: int) -> DateOrder:
        got = await self.indexes.date_order(folder_id)
        if got is None:
            raise LookupError(f"folder {folder_id} does not exist")
        index, order = got
        return DateOrder(order, index.sent)

    async def header_fields(self, message_ids: Sequence[int]) -> dict[int, HeaderTuple]:
        return await self.fields.many(message_ids)

    async def changes_since(self, folder_id: int, modseq: int) -> tuple[int, list[Change]]:
        """The folder's HIGHESTMODSEQ and every row (tombstones too) changed after ``modseq``.

        Sessions asking the same question after the same wake-up share one query: a query is
        joined only if it started after the latest change notification, so no session gets
        an answer older than the change it was woken for. The result is read-only.
        """
        if self.indexes.holds(folder_id):
            # The folder index keeps a log of recent changes: usually no query at all.
            index = await self.indexes.get(folder_id)
            answer = index.changes_after(modseq) if index is not None else None
            if answer is not None:
                highest, rows = answer
                return highest, [Change(u, m, f, e) for u, m, f, e in rows]
        key = (folder_id, modseq, self._changes.generation)
        task = self._inflight.get(key)
        if task is None:
            # A task of its own: a session that goes away does not cancel the others' answer.
            task = asyncio.ensure_future(self._changes_since(folder_id, modseq))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _changes_since(self, folder_id: int, modseq: int) -> tuple[int, list[Change]]:
        async with self._db.read() as conn:
            highest = (await conn.execute(_HIGHEST, {"folder": folder_id})).scalar()
            if highest is None or int(highest) <= modseq:
                return int(highest or modseq), []
            rows = await conn.execute(_CHANGED_SINCE, {"folder": folder_id, "modseq": modseq})
            return int(highest), [
                Change(int(u), int(m), _flags(f), e is not None) for u, m, f, e in rows
            ]

    async def vanished_since(self, folder_id: int, modseq: int) -> list[int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(folder_messages.c.uid)
                .where(folder_messages.c.folder_id == folder_id,
                       folder_messages.c.expunged_modseq > modseq)
                .order_by(folder_messages.c.uid)
            )
            return [int(u) for u in rows.scalars()]

    async def fetch_rows(
        self, folder_id: int, ranges: Ranges, *, full: bool, search: bool = False,
        changed_since: int | None = None,
    ) -> list[MessageRow]:
        """Live rows whose UID is in ``ranges``; ``full`` adds the message columns and view.

        Ranges are sent in chunks so that a fragmented set does not build a huge statement.
        """
        if not ranges:
            return []
        async with self._db.read() as conn:
            return await _fetch_rows(conn, self.views, folder_id, ranges, full=full,
                                     search=search, changed_since=changed_since)

    @asynccontextmanager
    async def _body_reader(self) -> AsyncIterator[BodyReader]:
        async with self._db.read() as conn:
            yield _Reader(self._db, conn, self.spans, self.views)

    def body_reader(self) -> AbstractAsyncContextManager[BodyReader]:
        """One read transaction for every body range of a FETCH or SEARCH."""
        return self._body_reader()

    # -- writes ----------------------------------------------------------------------
    async def store_flags(self, folder_id: int, new_flags: dict[int, tuple[str, ...]]) -> int:
        """Sets the flags of several UIDs under ONE new mod-sequence (RFC 7162 §3.1.3)."""
        if not new_flags:
            return 0
        async with self._db.begin() as conn:
            modseq = await self._write_flags(conn, folder_id, new_flags)
        self._changes.changed([folder_id])
        return modseq

    async def change_flags(self, folder_id: int, uids: Sequence[int],
                           compute: FlagChange) -> tuple[int, dict[int, tuple[int, Flags]]]:
        """Reads the flags of ``uids`` and writes ``compute(uid, modseq, flags)`` where it
        returns new flags (None: leave the message alone), in ONE write transaction.

        STORE and the implicit \\Seen of FETCH compute new flags from the current ones;
        done apart, another session's change made between the read and the write would be
        lost (two clients adding different flags to one message), and STORE UNCHANGEDSINCE
        would not be atomic (RFC 7162 §3.1.3). Inside the transaction the rows cannot
        change (SQLite's write lock; ``FOR UPDATE`` on PostgreSQL). ``compute`` may raise
        to refuse the whole command: nothing is written. Returns the new MODSEQ (0 when
        nothing changed) and UID → (MODSEQ, flags) as stored after, for the live messages.
        """
        state: dict[int, tuple[int, Flags]] = {}
        new_flags: dict[int, Flags] = {}
        modseq = 0
        async with self._db.begin() as conn:
            wanted = list(uids)
            stmt = _FLAGS_FOR_UPDATE if conn.dialect.name == "postgresql" else _FLAGS_OF
            for i in range(0, len(wanted), 500):
                params = {"folder": folder_id, "uids": wanted[i : i + 500]}
                for uid, current_modseq, text in await conn.execute(stmt, params):
                    current = _flags(text)
                    state[int(uid)] = (int(current_modseq), current)
            for uid in sorted(state):
                current_modseq, current = state[uid]
                new = compute(uid, current_modseq, current)
                if new is not None and set(new) != set(current):
                    new_flags[uid] = tuple(sorted(set(new)))
            if new_flags:
                modseq = await self._write_flags(conn, folder_id, new_flags)
                for uid, flags in new_flags.items():
                    state[uid] = (modseq, flags)
        if new_flags:
            self._changes.changed([folder_id])
        return modseq, state

    @staticmethod
    async def _write_flags(conn: AsyncConnection, folder_id: int,
                           new_flags: dict[int, Flags]) -> int:
        by_text: dict[str, list[int]] = {}
        for uid, flags in new_flags.items():
            by_text.setdefault(flags_text(flags), []).append(uid)
        modseq = await folder_rows.next_modseq(conn, folder_id)
        for text, uids in by_text.items():
            for i in range(0, len(uids), 500):
                await conn.execute(_SET_FLAGS, {"folder": folder_id, "uids": uids[i : i + 500],
                                                "text": text, "modseq": modseq})
        return modseq

    async def expunge(self, folder_id: int, uids: Sequence[int]) -> int:
        """Tombstones ``uids`` (kept for QRESYNC VANISHED, RFC 7162 §3.2.5.1)."""
        if not uids:
            return 0
        async with self._db.begin() as conn:
            modseq = await self._expunge(conn, folder_id, uids)
        self._changes.changed([folder_id])
        return modseq

    @staticmethod
    async def _expunge(conn: AsyncConnection, folder_id: int, uids: Sequence[int]) -> int:
        modseq = await folder_rows.next_modseq(conn, folder_id)
        for i in range(0, len(uids), 500):
            await conn.execute(_TOMBSTONE, {"folder": folder_id, "uids": list(uids[i : i + 500]),
                                            "mark": modseq})
        return modseq

    async def copy(
        self, folder_id: int, uids: Sequence[int], dest_id: int, *, move: bool = False
    ) -> list[tuple[int, int]]:
        """Files the messages of ``uids`` in ``dest_id`` with their flags and dates.

        Returns ``(source uid, new uid)`` pairs in source UID order (RFC 4315 COPYUID). With
        ``move`` the sources are expunged in the same transaction (RFC 6851 §3.3: atomic).
        """
        pairs: list[tuple[int, int]] = []
        async with self._db.begin() as conn:
            rows: list[Any] = []
            for i in range(0, len(uids), 500):
                rows += (await conn.execute(
                    _COPY_SOURCE, {"folder": folder_id, "uids": list(uids[i : i + 500])})).all()
            rows.sort(key=lambda r: r.uid)
            if not rows:
                return []
            first, modseq = await folder_rows.reserve(conn, dest_id, len(rows))
            values = []
            for i, r in enumerate(rows):
                # RFC 9051 §6.4.7: the copy keeps flags and internal date; \Recent is per
                # session and never stored.
                values.append({"folder_id": dest_id, "message_id": r.message_id,
                               "uid": first + i, "modseq": modseq, "flags": r.flags,
                               "internal_date": r.internal_date, "expunged_modseq": None})
                pairs.append((int(r.uid), first + i))
            await conn.execute(_FILE_COPY, values)
            if move:
                await self._expunge(conn, folder_id, [p[0] for p in pairs])
        self._changes.changed([dest_id, folder_id] if move else [dest_id])
        return pairs

    async def storage_used(self, account_id: int) -> int:
        """Octets of the live messages of every folder of the account (RFC 9208 STORAGE).

        Each folder's total is kept with the mark it is exact at: (UIDVALIDITY,
        HIGHESTMODSEQ, UIDNEXT). Every change to a folder's messages raises HIGHESTMODSEQ, so
        a folder whose mark moved is brought up to date by the difference only: rows filed
        since (UID at or above the old UIDNEXT) are added, rows expunged since (expunge
        MODSEQ above the old HIGHESTMODSEQ) taken away, both read through the (folder,
        MODSEQ) index. An APPEND costs a look at the rows it changed, not a sum of the
        folder (each APPEND used to sum its whole folder again for the quota check). Rows
        are never deleted, only tombstoned (VANISHED needs them), which is what makes the
        difference exact; a new UIDVALIDITY sums the folder again.

        Every sum is bounded by the new mark (UIDs below its UIDNEXT, live as of its
        HIGHESTMODSEQ), so a total is exact at its mark even when another writer (another
        worker) commits between the reads: the UIDs and MODSEQs of a transaction are
        reserved on the folder row it commits with.
        """
        async with self._db.read() as conn:
            marks = (await conn.execute(_FOLDER_MARKS, {"account": account_id})).all()
        sizes = self._folder_sizes
        total = 0
        changed: list[tuple[int, tuple[int, int, int]]] = []
        whole: list[tuple[int, tuple[int, int, int]]] = []
        for folder_id, uidvalidity, highest, uidnext in marks:
            label = (int(uidvalidity), int(highest), int(uidnext))
            held = sizes.get(folder_id)
            if held is not None and held[0] == label:
                total += held[1]
            elif held is not None and held[0][0] == label[0]:
                changed.append((folder_id, label))
            else:
                whole.append((folder_id, label))
        if changed:
            # A difference reads the few rows changed, by index: inline, like any read.
            async with self._db.read() as conn:
                for folder_id, label in changed:
                    (_, old_highest, old_next), held_size = sizes[folder_id]
                    delta = (await conn.execute(_SIZE_CHANGE, {
                        "folder": folder_id, "next": label[2], "highest": label[1],
                        "old_next": old_next, "old_highest": old_highest,
                    })).scalar_one()
                    size = held_size + int(delta or 0)
                    sizes[folder_id] = (label, size)
                    total += size
        if whole:
            # First use or a new UIDVALIDITY: the whole folder, on the scan connection.
            async with self._db.scan() as conn:
                for folder_id, label in whole:
                    size = int((await conn.execute(_FOLDER_SIZE, {
                        "folder": folder_id, "next": label[2], "highest": label[1],
                    })).scalar_one())
                    sizes[folder_id] = (label, size)
                    total += size
        return total

    async def acl(self, folder_id: int) -> list[tuple[str, str]]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(folder_acl.c.identifier, folder_acl.c.rights)
                .where(folder_acl.c.folder_id == folder_id).order_by(folder_acl.c.identifier)
            )
            return [(i, r) for i, r in rows]

    async def set_acl(self, folder_id: int, identifier: str, rights: str | None, *,
                      change: AclChange | None = None) -> None:
        """Replaces (or with None removes) the rights of ``identifier`` (RFC 4314 §3.1-3.2);
        an empty string is stored: it takes a delegate's account-wide rights away here.
        With ``change``, a real change of rights is proved in the same transaction."""
        async with self._db.begin() as conn:
            if change is not None:
                await change.record(conn, identifier, rights or "")
            await conn.execute(
                delete(folder_acl).where(folder_acl.c.folder_id == folder_id,
                                         folder_acl.c.identifier == identifier)
            )
            if rights is not None:
                await conn.execute(
                    folder_acl.insert().values(folder_id=folder_id, identifier=identifier,
                                               rights=rights)
                )

    # -- delegations (RFC 4314 rights of other accounts) ----------------------------------
    async def shared_folders(self, account_id: int, address: str, *,
                             access_version: int | None = None) -> list[SharedFolder]:
        """Folders of other accounts that ``account_id`` reaches, with how it reaches them.

        ``access_version``: the access version (:mod:`storage.access`) the caller read for
        this request. Who delegated what to the account changes only with it, so the
        delegations and ACL rows read at that version are kept and only the folders they
        reach are read again (none at all for the many accounts that reach nothing): the
        webmail asks on every page."""
        held = self._reach.get(account_id) if access_version is not None else None
        through = held[1] if held is not None and held[0] == (access_version, address) else None
        if through is not None and not through.delegated and not through.acl:
            return []
        async with self._db.read() as conn:
            if through is None:
                through = await delegation_rows.reach(conn, account_id, address)
                if access_version is not None:
                    if len(self._reach) >= MAX_HELD_REACH:
                        self._reach.clear()  # bounded: taken again as pages ask
                    self._reach[account_id] = ((access_version, address), through)
            if not through.delegated and not through.acl:
                return []
            found = await delegation_rows.reached_folders(conn, account_id, through)
            if not found:
                return []
            rows = await conn.execute(
                select(*FOLDER_COLUMNS).where(folders.c.id.in_([f.folder_id for f in found]))
            )
            infos = {int(r.id): _info(r) for r in rows}
        return [SharedFolder(infos[f.folder_id], f.owner_id, f.owner, f.delegated_rights,
                             f.acl_rights) for f in found if f.folder_id in infos]

    async def delegates(self, owner_id: int) -> list[tuple[str, str]]:
        """``(address, rights)`` of every account holding a delegation on ``owner_id``."""
        async with self._db.read() as conn:
            return [(d.delegate, d.rights)
                    for d in await delegation_rows.of_owner(conn, owner_id)]

    # -- \Recent ------------------------------------------------------------------------
    async def claim_recent(self, folder_id: int, up_to_uid: int) -> int:
        """Marks UIDs up to ``up_to_uid`` as announced; returns the previous mark.

        RFC 3501 §2.3.2: at most one session sees a message as \\Recent. The mark lives in
        the folder row and moves with a compare-and-set, so two sessions (on any node)
        never both win the same UIDs, and a restart does not make old mail recent again.
        """
        known = self._recent_marks.get(folder_id, -1)
        if up_to_uid <= known:
            # Every UID asked about is at or below a mark already seen, hence at or below the
            # current one (it only grows): no write, and the same answer for those UIDs.
            return known
        async with self._claim_lock:
            previous = await self._claim_recent(folder_id, up_to_uid)
        mark = max(previous, up_to_uid)
        if mark > self._recent_marks.get(folder_id, -1):
            self._recent_marks[folder_id] = mark
        return previous

    async def _claim_recent(self, folder_id: int, up_to_uid: int) -> int:
        known = self._recent_marks.get(folder_id, -1)
        if up_to_uid <= known:
            return known  # another session of this process moved it while we waited
        while True:
            async with self._db.begin() as conn:
                previous = int((await conn.execute(
                    _RECENT_UID, {"folder": folder_id})).scalar() or 0)
                if up_to_uid <= previous:
                    return previous
                result = await conn.execute(_MOVE_RECENT, {
                    "folder": folder_id, "previous": previous, "mark": up_to_uid})
                if result.rowcount:
                    return previous
            # Another session moved the mark between our read and write: read it again.

    async def recent_floor(self, folder_id: int) -> int:
        """UIDs above this are still \\Recent for the next session that selects the folder."""
        async with self._db.read() as conn:
            return int((await conn.execute(_RECENT_UID, {"folder": folder_id})).scalar() or 0)

    # -- subscriptions of deleted mailboxes ----------------------------------------------
    async def lost_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names whose mailbox no longer exists (RFC 5258 \\NonExistent)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(lost_subscriptions.c.name)
                .where(lost_subscriptions.c.account_id == account_id)
                .order_by(lost_subscriptions.c.name)
            )
            return [str(n) for n in rows.scalars()]

    async def forget_subscription(self, account_id: int, name: str) -> bool:
        """UNSUBSCRIBE of a deleted mailbox's name; False when it was not subscribed."""
        async with self._db.begin() as conn:
            result = await conn.execute(delete(lost_subscriptions).where(
                lost_subscriptions.c.account_id == account_id,
                lost_subscriptions.c.name == name))
            return bool(result.rowcount)

    async def save_dates(self, folder_id: int, uids: Sequence[int]
                         ) -> dict[int, datetime | None]:
        fm = folder_messages
        out: dict[int, datetime | None] = {}
        async with self._db.read() as conn:
            for i in range(0, len(uids), 500):
                rows = await conn.execute(select(fm.c.uid, fm.c.saved_at).where(
                    fm.c.folder_id == folder_id, fm.c.uid.in_(list(uids[i:i + 500]))))
                out.update((int(uid), saved) for uid, saved in rows.all())
        return out


    async def annotations(self, account_id: int, folder_id: int | None,
                          names: Sequence[str], depth: int | None) -> dict[str, bytes]:
        async with self._db.read() as conn:
            return await annotation_rows.read_entries(
                conn, self._db.blobs.keyring, account_id, folder_id, names, depth)

    async def set_annotations(self, folder_id: int | None,
                              values: Mapping[int, Mapping[str, bytes | None]],
                              max_entries: int) -> None:
        async with self._db.begin() as conn:
            for account_id, entries in values.items():
                await annotation_rows.write_entries(
                    conn, self._db.blobs.keyring, account_id, folder_id, entries,
                    max_entries)

__all__ = [
    "AlreadyExists",
    "TooManyEntries",
    "BodyReader",
    "Change",
    "FolderCounts",
    "FolderInfo",
    "MailStore",
    "MessageRow",
    "SharedFolder",
    "SpanCache",
    "SqlMailStore",
]
