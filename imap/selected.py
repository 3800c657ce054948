"""The state of the selected mailbox of one session, kept small on purpose.

A session keeps the UIDs it has announced (an ``array('L')``, 4 octets a message), the
last mod-sequence it has reported, and the few UIDs that are \\Recent for it. Flags are not
cached: they are read with each FETCH. Updates made by others are found with one query
(rows whose MODSEQ is above the last reported one) and turned into untagged responses at
the command boundaries where RFC 3501 §5.2 / RFC 9051 §5.2 allow them.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

from imap.mailstore import MailStore
from imap.protocol import ImapRefusal, SequenceSet, fetch_response, untagged_data
from imap.protocol.response import Atom, Value


def flags_value(flags: tuple[str, ...], recent: bool) -> list[Value]:
    """FLAGS as a parenthesised list, with the session-only \\Recent (RFC 3501 §2.3.2)."""
    out: list[Value] = [Atom(f) for f in flags]
    if recent:
        out.append(Atom("\\Recent"))
    return out


def uid_ranges(uids: list[int]) -> list[tuple[int, int]]:
    """Contiguous numeric runs of a sorted UID list (one SQL range each)."""
    out: list[tuple[int, int]] = []
    for u in uids:
        if out and out[-1][1] + 1 == u:
            out[-1] = (out[-1][0], u)
        else:
            out.append((u, u))
    return out


@dataclass(slots=True, eq=False)
class SelectedMailbox:
    """One selected (or examined) mailbox of one session."""

    folder_id: int
    name: str
    uidvalidity: int
    readonly: bool
    uids: array[int]
    modseq: int
    event: asyncio.Event
    recent: set[int] = field(default_factory=set)
    pending_expunge: set[int] = field(default_factory=set)
    own_changes: dict[int, int] = field(default_factory=dict)
    saved: list[int] | None = None  # RFC 5182 SEARCHRES, as UIDs

    # -- numbers -------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        """Message sequence number of ``uid``, or None when this session does not know it."""
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, seqset: SequenceSet, by_uid: bool) -> list[int]:
        """The known UIDs a sequence set names, ascending (``$`` is the saved result)."""
        if seqset.saved:
            # RFC 5182 §2.1: '$' is the last saved result (empty if none).
            saved = self.saved or []
            return [u for u in saved if self.seq_of(u) is not None]
        uids = self.uids
        if not by_uid:
            n = len(uids)
            if n == 0:
                if seqset.ranges and not by_uid:
                    # RFC 9051 §6.4.5: message numbers that do not exist are an error.
                    raise ImapRefusal("BAD", None, "Invalid message sequence number: mailbox is "
                                      "empty")
                return []
            out: list[int] = []
            for a, b in seqset.resolve(n):
                if a > n:
                    raise ImapRefusal("BAD", None, f"Invalid message sequence number {a} "
                                      f"(the mailbox has {n} messages)")
                out.extend(uids[a - 1 : min(b, n)])
            return out
        top = uids[-1] if uids else 0
        out = []
        for a, b in seqset.resolve(top):
            i = bisect_left(uids, a)
            while i < len(uids) and uids[i] <= b:
                out.append(uids[i])
                i += 1
        return out

    # -- updates from other sessions -------------------------------------------------
    async def sync(
        self, store: MailStore, *, allow_expunge: bool, condstore: bool, qresync: bool,
        rev2: bool,
    ) -> list[bytes]:
        """Untagged responses for what changed since the last report.

        RFC 3501 §7.4.1: EXPUNGE is never sent while answering FETCH, STORE or SEARCH, so
        the caller says whether expunges may be announced now; if not they wait in
        ``pending_expunge`` and the sequence numbers stay those the client knows.
        """
        self.event.clear()
        highest, changes = await store.changes_since(self.folder_id, self.modseq)
        out: list[bytes] = []
        top = self.uids[-1] if self.uids else 0
        new: list[int] = []
        flagged: list[tuple[int, int, tuple[str, ...]]] = []
        for ch in changes:
            if ch.expunged:
                if self.seq_of(ch.uid) is not None:
                    self.pending_expunge.add(ch.uid)
            elif ch.uid > top:
                new.append(ch.uid)
            elif self.own_changes.get(ch.uid) != ch.modseq and self.seq_of(ch.uid) is not None:
                flagged.append((ch.uid, ch.modseq, ch.flags))
        self.own_changes.clear()
        if highest > self.modseq:
            self.modseq = highest
        if allow_expunge and self.pending_expunge:
            out += self.take_expunged(sorted(self.pending_expunge), qresync)
        if new:
            self.uids.extend(new)
            # RFC 3501 §2.3.2: \Recent goes to the first session told; EXAMINE only looks.
            # RFC 9051 §2.3.2: an IMAP4rev2 session neither sees nor claims it.
            if not rev2:
                if self.readonly:
                    floor = await store.recent_floor(self.folder_id)
                else:
                    floor = await store.claim_recent(self.folder_id, new[-1])
                self.recent.update(u for u in new if u > floor)
            out.append(untagged_data(len(self.uids), "EXISTS"))
            if not rev2:
                out.append(untagged_data(len(self.recent), "RECENT"))
        for uid, modseq, flags in flagged:
            seq = self.seq_of(uid)
            if seq is None:
                continue
            items: list[tuple[str, Value]] = [
                ("UID", uid), ("FLAGS", flags_value(flags, uid in self.recent))
            ]
            if condstore:
                items.append(("MODSEQ", [modseq]))
            out.append(fetch_response(seq, items))
        return out

    def take_expunged(self, uids: list[int], qresync: bool) -> list[bytes]:
        """Removes ``uids`` and answers EXPUNGE per message, or one VANISHED under QRESYNC."""
        out: list[bytes] = []
        gone: list[int] = []
        # Highest first, so each EXPUNGE number is still right when the client applies it
        # (RFC 9051 §7.5.1: numbers shift down after each EXPUNGE).
        for uid in sorted(uids, reverse=True):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            del self.uids[seq - 1]
            self.recent.discard(uid)
            self.pending_expunge.discard(uid)
            gone.append(uid)
            if not qresync:
                out.append(untagged_data(seq, "EXPUNGE"))
        if qresync and gone:
            # RFC 7162 §3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled.
            out.append(untagged_data("VANISHED", SequenceSet.from_ints(gone)))
        return out
