"""In-memory indexes of folders: UID, MODSEQ, flags and message of every live message.

Why: the commands clients send most — SELECT, ``UID FETCH 1:* (FLAGS)``, SEARCH on flags
and on the usual headers — each need every row of the folder. Reading 5,000 rows per
command from the database made the server spend its time converting rows. Mature IMAP
servers keep such an index per mailbox and bring it up to date from a change log; here the
change log is already in the database: every write to a folder's messages (new, flags,
expunge, move, retention) gives the rows it touches a new MODSEQ and raises the folder's
HIGHESTMODSEQ in the same transaction (RFC 7162). So an index is exact as of the
HIGHESTMODSEQ it was read at, and bringing it up to date is one query for the rows above it.

A folder's index is checked (one primary-key read of the folder row) whenever a change to
it was notified through the :class:`~mail.changes.ChangeHub` (this process, or other nodes
through PostgreSQL NOTIFY), and otherwise at most once per :data:`QUIET_RECHECK` seconds,
so a write nobody announced (an offline tool) is seen within that delay. Each index also
keeps a log of the changes its refreshes saw, from which sessions learn what changed since
they last looked (RFC 3501 §5.2) without a query. Memory is bounded: least recently used
folders are dropped beyond ``max_messages`` messages in all.

Message headers never change once stored, so :class:`HeaderFields` keeps the decoded
Subject/From/To/Cc of messages for SEARCH without any coherence question. They are stored
sealed under each body's data key (:mod:`storage.metadata`): opened once, when first
needed, then kept here in memory only.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mail.changes import ChangeHub
from storage.database import Database
from storage.messages import KEY_COLUMNS, WITH_KEYS, open_fields
from storage.schema import folder_messages, folders, messages
from storage.types import epoch_seconds

CHANGE_LOG = 4096
"""Recent changes kept per folder (at most twice as many): sessions learn what changed since
they last looked from it instead of the database (see :meth:`FolderIndex.changes_after`)."""

QUIET_RECHECK = 1.0
"""Seconds an index is trusted without a check when no change to its folder was notified."""

_MAX_INSERTED = 256
"""New messages inserted one by one into a folder's date order; more are sorted anew."""

_MAX_FLAG_TEXTS = 10_000
"""Distinct flag lists shared between entries (clients may invent many keyword sets)."""

Entry = tuple[int, tuple[str, ...], int]
"""``(modseq, flags, message id)`` of one live message."""

HeaderTuple = tuple[str, str, str, str]
"""Casefolded decoded ``(subject, from, to, cc)`` of one message."""

FOLDER_COLUMNS = (
    folders.c.id, folders.c.name, folders.c.special_use, folders.c.uidvalidity,
    folders.c.uidnext, folders.c.highestmodseq, folders.c.subscribed, folders.c.recent_uid,
)
"""The folder row as the IMAP store reads it (also :mod:`mailstore.store`)."""

# Built once: composing and keying a statement per call costs more than running it.
_FOLDER_ROW = select(*FOLDER_COLUMNS).where(folders.c.id == bindparam("folder"))
_CHANGED_ROWS = select(
    folder_messages.c.uid, folder_messages.c.modseq, folder_messages.c.flags,
    folder_messages.c.expunged_modseq, folder_messages.c.message_id,
).where(
    folder_messages.c.folder_id == bindparam("folder"),
    folder_messages.c.modseq > bindparam("modseq"),
).order_by(folder_messages.c.uid)
_LIVE_ROWS = _CHANGED_ROWS.where(folder_messages.c.expunged_modseq.is_(None))
_SENT_ROWS = select(
    folder_messages.c.uid,
    epoch_seconds(func.coalesce(messages.c.sent_at, folder_messages.c.internal_date)),
).select_from(folder_messages.join(messages, messages.c.id == folder_messages.c.message_id)
).where(
    folder_messages.c.folder_id == bindparam("folder"),
    folder_messages.c.uid > bindparam("above"),
    folder_messages.c.expunged_modseq.is_(None),
)
_SEALED_FIELDS = select(
    messages.c.id, messages.c.sealed_fields, messages.c.blob_id, *KEY_COLUMNS,
).select_from(WITH_KEYS).where(messages.c.id.in_(bindparam("ids", expanding=True)))


class FolderIndex:
    """The live messages of one folder, ascending by UID, as of ``modseq``.

    ``entries`` maps UID → :data:`Entry`; UIDs only grow, so insertion order is UID order.
    ``row`` is the folder row read at the last check (UIDNEXT, HIGHESTMODSEQ, …).
    """

    __slots__ = ("by_date", "by_date_mark", "checked_at", "entries", "event", "folder_id",
                 "lock", "log", "log_floor", "log_mods", "modseq", "order_lock", "row", "sent",
                 "sent_top")

    def __init__(self, folder_id: int, event: asyncio.Event) -> None:
        self.folder_id = folder_id
        self.event = event
        self.entries: dict[int, Entry] = {}
        self.modseq = 0
        self.row: Any = None
        self.checked_at = -1e9
        self.lock = asyncio.Lock()
        # Changes seen by the refreshes since the first load, ascending MODSEQ: (uid,
        # expunged) in ``log``, their MODSEQs in ``log_mods``. Complete above ``log_floor``.
        self.log: list[tuple[int, bool]] = []
        self.log_mods: list[int] = []
        self.log_floor = 0
        # Date order (:meth:`FolderIndexes.date_order`), kept only once a list asked for it:
        # UID → sent instant (epoch seconds) of every live message up to UID ``sent_top``,
        # and the UIDs ascending by (sent, UID) as of ``by_date_mark`` (last UID, count).
        self.sent: dict[int, int] = {}
        self.sent_top = 0
        self.by_date: list[int] = []
        self.by_date_mark: tuple[int, int] = (-1, -1)
        self.order_lock = asyncio.Lock()

    def record(self, changes: list[tuple[int, int, bool]]) -> None:
        """Appends ``(modseq, uid, expunged)`` rows of one refresh (all above the previous
        ones) to the change log, dropping its older half when it grows too long."""
        changes.sort()
        for modseq, uid, expunged in changes:
            self.log.append((uid, expunged))
            self.log_mods.append(modseq)
        if len(self.log) > 2 * CHANGE_LOG:
            cut = len(self.log) - CHANGE_LOG
            self.log_floor = max(self.log_floor, self.log_mods[cut - 1])
            del self.log[:cut], self.log_mods[:cut]

    def changes_after(
        self, modseq: int
    ) -> tuple[int, list[tuple[int, int, tuple[str, ...], bool]]] | None:
        """HIGHESTMODSEQ and ``(uid, modseq, flags, expunged)`` of every message changed
        after ``modseq``, ascending UID (no flags for expunged ones), as a session reports them
        (RFC 3501 §5.2), or None
        when the log does not reach back that far (the caller asks the database)."""
        if modseq < self.log_floor:
            return None
        start = bisect_right(self.log_mods, modseq)
        if start == len(self.log_mods):
            return self.modseq, []
        latest: dict[int, int] = {}
        for i in range(start, len(self.log)):
            latest[self.log[i][0]] = i
        out: list[tuple[int, int, tuple[str, ...], bool]] = []
        entries = self.entries
        for uid in sorted(latest):
            entry = entries.get(uid)
            if entry is not None:
                out.append((uid, entry[0], entry[1], False))
            else:
                out.append((uid, self.log_mods[latest[uid]], (), True))
        return self.modseq, out

    def __len__(self) -> int:
        return len(self.entries)

    def in_ranges(self, ranges: Sequence[tuple[int, int]],
                  changed_since: int | None = None) -> list[tuple[int, Entry]]:
        """``(uid, entry)`` of the live messages whose UID is in ``ranges`` (ascending,
        inclusive), optionally only those changed after ``changed_since``."""
        entries = self.entries
        out: list[tuple[int, Entry]] = []
        append = out.append
        last = next(reversed(entries), 0)
        if len(ranges) == 1 and ranges[0][0] <= 1 and ranges[0][1] >= last:
            items: Iterable[tuple[int, Entry]] = entries.items()
            if changed_since is None:
                return list(items)
            return [(u, e) for u, e in items if e[0] > changed_since]
        get = entries.get
        for a, b in ranges:
            if b - a > len(entries):
                # A wide range over a sparse folder: walk the entries, not the numbers.
                for uid, entry in entries.items():
                    if a <= uid <= b and (changed_since is None or entry[0] > changed_since):
                        append((uid, entry))
                continue
            for uid in range(a, b + 1):
                got = get(uid)
                if got is not None and (changed_since is None or got[0] > changed_since):
                    append((uid, got))
        if len(ranges) > 1:
            out.sort(key=lambda item: item[0])
        return out


class FolderIndexes:
    """Folder id → :class:`FolderIndex`, least recently used dropped beyond a budget."""

    def __init__(self, db: Database, changes: ChangeHub, max_messages: int) -> None:
        self._db = db
        self._changes = changes
        self.max_messages = max_messages
        self._indexes: OrderedDict[int, FolderIndex] = OrderedDict()
        self._flag_tuples: dict[str, tuple[str, ...]] = {"": ()}
        self._total = 0  # messages in all indexes, kept as they change

    def __len__(self) -> int:
        return len(self._indexes)

    @property
    def messages(self) -> int:
        """Messages held in all indexes."""
        return self._total

    def holds(self, folder_id: int) -> bool:
        """True when ``folder_id`` has an index in memory (it may need a refresh)."""
        return folder_id in self._indexes

    def drop(self, folder_id: int) -> None:
        """Forgets a folder (deleted: SQLite may give its id to a new folder)."""
        index = self._indexes.pop(folder_id, None)
        if index is not None:
            self._total -= len(index)
            self._changes.unwatch(folder_id, index.event)

    async def get(self, folder_id: int) -> FolderIndex | None:
        """The index of ``folder_id`` brought up to date, or None if the folder is gone."""
        index = self._indexes.get(folder_id)
        loop_time = asyncio.get_running_loop().time()
        if index is not None:
            self._indexes.move_to_end(folder_id)
            if not index.event.is_set() and loop_time - index.checked_at < QUIET_RECHECK:
                return index
        else:
            index = FolderIndex(folder_id, self._changes.watch(folder_id))
            self._indexes[folder_id] = index
        async with index.lock:
            if index.event.is_set() or loop_time - index.checked_at >= QUIET_RECHECK:
                # Cleared before reading: a change committed meanwhile sets it again.
                index.event.clear()
                before = len(index)
                try:
                    async with self._db.read() as conn:
                        present = await self._refresh(conn, index)
                finally:
                    if self._indexes.get(folder_id) is index:
                        self._total += len(index) - before
                index.checked_at = loop_time
                if not present:
                    self.drop(folder_id)
                    return None
        self._evict(keep=folder_id)
        return index

    async def date_order(self, folder_id: int) -> tuple[FolderIndex, list[int]] | None:
        """The index of ``folder_id`` and its live UIDs ascending by sent instant, then UID
        (RFC 5256 SORT DATE: the Date field's instant, else the INTERNALDATE), or None if
        the folder is gone. The list is shared: read it, never change it.

        The sent instants are read once per message (``messages.sent_at``, set at accept
        time), only for UIDs above those already known since UIDs only grow; the order is
        kept and brought up to date by insertion when a few messages came, so a page of a
        100,000-message folder costs no sort and no decryption."""
        index = await self.get(folder_id)
        if index is None:
            return None
        entries = index.entries
        if (next(reversed(entries), 0), len(entries)) == index.by_date_mark:
            return index, index.by_date
        # One maker of the order at a time: the lists opened together after a start (ten
        # people of one shared box) wait for one query and one sort instead of each making
        # their own.
        async with index.order_lock:
            return index, await self._make_date_order(index)

    async def _make_date_order(self, index: FolderIndex) -> list[int]:
        entries = index.entries
        mark = (next(reversed(entries), 0), len(entries))
        if mark == index.by_date_mark:
            return index.by_date  # made by the call this one waited for
        uids = list(entries)  # the entries may change during the query below
        sent = index.sent
        if mark[0] > index.sent_top:
            async with self._db.read() as conn:
                rows = (await conn.execute(
                    _SENT_ROWS, {"folder": index.folder_id, "above": index.sent_top})).all()
            top = index.sent_top
            sent.update(rows)
            if rows:
                top = max(top, max(uid for uid, _when in rows))
            index.sent_top = top
        live = [u for u in uids if u in sent]  # one expunged since the query: left out

        def key(uid: int) -> tuple[int, int]:
            return sent[uid], uid

        previous = index.by_date
        cut = bisect_right(live, index.by_date_mark[0])
        added = live[cut:]  # arrived since the order was made
        order: list[int] | None = None
        if previous and len(added) <= _MAX_INSERTED:
            kept = previous
            if len(kept) != cut:  # some were expunged
                still = set(live[:cut])
                kept = [u for u in previous if u in still]
            if len(kept) == cut:
                order = list(kept)
                for uid in added:
                    insort(order, uid, key=key)
        if order is None:
            order = sorted(live, key=key)
        if len(sent) > 2 * len(index.entries) + 1024:
            # Forget expunged messages; against the current entries, not this call's
            # snapshot, which may miss messages another call has just read the instant of.
            live_now = index.entries
            index.sent = {u: t for u, t in sent.items() if u in live_now}
        index.by_date, index.by_date_mark = order, (live[-1] if live else 0, len(live))
        return order

    async def _refresh(self, conn: AsyncConnection, index: FolderIndex) -> bool:
        row = (await conn.execute(_FOLDER_ROW, {"folder": index.folder_id})).first()
        if row is None:
            return False
        highest = int(row.highestmodseq)
        if highest > index.modseq:
            # First load: live rows only (tombstones are for the change log).
            stmt = _CHANGED_ROWS if index.modseq else _LIVE_ROWS
            result = await conn.execute(
                stmt, {"folder": index.folder_id, "modseq": index.modseq})
            entries = index.entries
            first_load = index.modseq == 0
            changes: list[tuple[int, int, bool]] = []
            if len(self._flag_tuples) > _MAX_FLAG_TEXTS:
                self._flag_tuples = {"": ()}  # sharing is only an economy: start again
            tuples = self._flag_tuples
            top = highest
            for uid, modseq, text, expunged, message_id in result.all():
                if modseq > top:
                    top = modseq  # committed after the folder row was read (PostgreSQL)
                changes.append((modseq, uid, expunged is not None))
                if expunged is not None:
                    entries.pop(uid, None)
                    continue
                flags = tuples.get(text or "")
                if flags is None:
                    flags = tuples[text] = tuple(text.split())
                entries[uid] = (modseq, flags, message_id)
            index.modseq = top
            if first_load:
                index.log_floor = top  # the first load skipped tombstones
            else:
                index.record(changes)
        index.row = row
        return True

    def _evict(self, keep: int) -> None:
        while self._total > self.max_messages and len(self._indexes) > 1:
            folder_id = next(iter(self._indexes))
            if folder_id == keep:
                self._indexes.move_to_end(folder_id)
                continue
            self.drop(folder_id)


class HeaderFields:
    """Message id → casefolded decoded ``(subject, from, to, cc)``, oldest dropped first.

    Stored messages never change, so an entry is valid for as long as it is kept. Values
    are casefolded once here, as SEARCH compares them (RFC 9051 §6.4.4: case-insensitive).
    """

    def __init__(self, db: Database, max_entries: int) -> None:
        self._db = db
        self.max_entries = max_entries
        self._fields: OrderedDict[int, HeaderTuple] = OrderedDict()

    def __len__(self) -> int:
        return len(self._fields)

    async def many(self, message_ids: Sequence[int]) -> dict[int, HeaderTuple]:
        """The fields of every message in ``message_ids`` (missing ones read in chunks)."""
        fields = self._fields
        out: dict[int, HeaderTuple] = {}
        missing: list[int] = []
        for mid in message_ids:
            got = fields.get(mid)
            if got is None:
                missing.append(mid)
            else:
                out[mid] = got
        if missing:
            store = self._db.blobs
            async with self._db.read() as conn:
                for i in range(0, len(missing), 500):
                    rows = await conn.execute(_SEALED_FIELDS, {"ids": missing[i : i + 500]})
                    for mid, *sealed in rows:
                        subject, from_, to, cc, _sent = open_fields(store, *sealed)
                        value = ((subject or "").casefold(), (from_ or "").casefold(),
                                 (to or "").casefold(), (cc or "").casefold())
                        out[mid] = fields[mid] = value
            while len(fields) > self.max_entries:
                fields.popitem(last=False)
        return out
