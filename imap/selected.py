"""The state of the selected mailbox of one session, kept small on purpose.

A session keeps the UIDs it has announced (a :class:`UidList` of runs: a dense mailbox
costs a few dozen octets whatever its size), the last mod-sequence it has reported, and the
few UIDs that are \\Recent for it. Flags are not cached: they are read with each FETCH.
Updates made by others are found with one query (rows whose MODSEQ is above the last
reported one; sessions woken by the same change share it) and turned into untagged
responses at the command boundaries where RFC 3501 §5.2 / RFC 9051 §5.2 allow them.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, overload

from imap.protocol import (
    ImapRefusal,
    ResponseCode,
    SequenceSet,
    fetch_response,
    untagged,
    untagged_data,
)
from imap.protocol.response import Atom, Value
from mailstore.store import MailStore

if TYPE_CHECKING:
    from imap.contexts import UpdateContext

QUIET_RECHECK = 1.0
"""Seconds during which a session that was not notified of any change skips the query for
changes at the end of a command (the query is most of the cost of a cheap command)."""


SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def permanent_flags(rights: str, keywords: Iterable[str]) -> tuple[str, ...]:
    """RFC 4314 §4: PERMANENTFLAGS lists only the flags the rights allow to change."""
    out: list[str] = []
    for flag in SYSTEM_FLAGS:
        needed = {"\\Seen": "s", "\\Deleted": "t"}.get(flag, "w")
        if needed in rights:
            out.append(flag)
    if "w" in rights:
        out += [*keywords, "\\*"]
    return tuple(out)


def flags_announcement(keywords: Iterable[str], rights: str, readonly: bool) -> list[bytes]:
    """The untagged FLAGS and ``OK [PERMANENTFLAGS]`` of a mailbox (RFC 9051 §7.3.5, §7.1)."""
    keywords = sorted(keywords)
    out = [untagged_data("FLAGS", [Atom(f) for f in (*SYSTEM_FLAGS, *keywords)])]
    if readonly:
        out.append(untagged("OK", "No permanent flags in read-only mode",
                            ResponseCode.permanentflags(())))
    else:
        out.append(untagged("OK", "Flags and keywords are kept",
                            ResponseCode.permanentflags(permanent_flags(rights, keywords))))
    return out


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


class UidList:
    """The ascending UIDs a session knows, stored as runs of consecutive UIDs.

    Most mailboxes are dense (UIDs are allocated in order and few are expunged), so a
    5,000-message INBOX is one run of a few dozen octets instead of 20 KB per session; 10,000
    IDLE sessions are thus cheap. It behaves as the sorted sequence it replaces: ``len``,
    indexing (negative too), slicing, iteration, ``extend`` with higher UIDs and ``del``.
    """

    __slots__ = ("_counts", "_lens", "_starts", "_total")

    def __init__(self, uids: Iterable[int] = ()) -> None:
        self._starts = array("L")
        self._lens = array("L")
        self._counts = array("L")  # UIDs before each run (its first message index)
        self._total = 0
        self.extend(uids)

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[int]:
        for start, length in zip(self._starts, self._lens, strict=True):
            yield from range(start, start + length)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UidList | array | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def _run(self, index: int) -> int:
        return bisect_right(self._counts, index) - 1

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> list[int]: ...

    def __getitem__(self, key: int | slice) -> int | list[int]:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._total)
            if step != 1:
                return list(self)[key]
            out: list[int] = []
            i = start
            while i < stop:
                r = self._run(i)
                offset = i - self._counts[r]
                take = min(self._lens[r] - offset, stop - i)
                first = self._starts[r] + offset
                out.extend(range(first, first + take))
                i += take
            return out
        index = key + self._total if key < 0 else key
        if not 0 <= index < self._total:
            raise IndexError("UID index out of range")
        r = self._run(index)
        return self._starts[r] + index - self._counts[r]

    def index(self, uid: int) -> int:
        """Position of ``uid`` (0-based), or -1 when it is not in the list."""
        r = bisect_right(self._starts, uid) - 1
        if r >= 0 and uid < self._starts[r] + self._lens[r]:
            return self._counts[r] + uid - self._starts[r]
        return -1

    def first_at_or_above(self, uid: int) -> int:
        """Position of the first UID ≥ ``uid`` (``len`` when there is none)."""
        r = bisect_right(self._starts, uid) - 1
        if r >= 0 and uid < self._starts[r] + self._lens[r]:
            return self._counts[r] + uid - self._starts[r]
        return self._counts[r + 1] if r + 1 < len(self._starts) else self._total

    def ranges(self) -> list[tuple[int, int]]:
        """The runs as inclusive ``(first, last)`` UID ranges (one SQL range each)."""
        return [(a, a + n - 1) for a, n in zip(self._starts, self._lens, strict=True)]

    def extend(self, uids: Iterable[int]) -> None:
        """Appends UIDs above the last one (new messages), merging consecutive ones."""
        starts, lens = self._starts, self._lens
        for uid in uids:
            if starts and uid == starts[-1] + lens[-1]:
                lens[-1] += 1
            else:
                if starts and uid < starts[-1] + lens[-1]:
                    raise ValueError(f"UID {uid} is not above the last known UID")
                starts.append(uid)
                lens.append(1)
                self._counts.append(self._total)
            self._total += 1

    def __delitem__(self, index: int) -> None:
        """Removes the UID at ``index`` (an expunge), splitting its run if needed."""
        if index < 0:
            index += self._total
        if not 0 <= index < self._total:
            raise IndexError("UID index out of range")
        r = self._run(index)
        offset = index - self._counts[r]
        start, length = self._starts[r], self._lens[r]
        fix_from = r + 1  # runs after the removed UID: one message fewer before them
        if length == 1:
            del self._starts[r], self._lens[r], self._counts[r]
            fix_from = r
        elif offset == 0:
            self._starts[r] = start + 1
            self._lens[r] = length - 1
        elif offset == length - 1:
            self._lens[r] = length - 1
        else:
            self._lens[r] = offset
            self._starts.insert(r + 1, start + offset + 1)
            self._lens.insert(r + 1, length - offset - 1)
            self._counts.insert(r + 1, self._counts[r] + offset)  # already after removal
            fix_from = r + 2
        for i in range(fix_from, len(self._counts)):
            self._counts[i] -= 1
        self._total -= 1

    def __repr__(self) -> str:
        runs = ", ".join(f"{a}:{a + n - 1}" for a, n in zip(self._starts, self._lens, strict=True))
        return f"UidList([{runs}])"


@dataclass(slots=True, eq=False)
class SelectedMailbox:
    """One selected (or examined) mailbox of one session."""

    folder_id: int
    name: str
    uidvalidity: int
    readonly: bool
    uids: UidList
    modseq: int
    event: asyncio.Event
    recent: set[int] = field(default_factory=set)
    pending_expunge: set[int] = field(default_factory=set)
    own_changes: dict[int, int] = field(default_factory=dict)
    saved: list[int] | None = None  # RFC 5182 SEARCHRES, as UIDs
    keywords: set[str] = field(default_factory=set)  # those announced in FLAGS
    rights: str = ""  # RFC 4314 rights at SELECT (for PERMANENTFLAGS)
    synced_at: float = 0.0  # loop time of the last query for changes
    # RFC 5267 §4.3 UPDATE contexts by tag (imap/contexts.py); they end with the mailbox.
    contexts: dict[str, UpdateContext] = field(default_factory=dict)

    def contexts_changed(self) -> None:
        """The mailbox changed: every live result must be evaluated again."""
        for context in self.contexts.values():
            context.dirty = True

    # -- numbers -------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        """Message sequence number of ``uid``, or None when this session does not know it."""
        i = self.uids.index(uid)
        return None if i < 0 else i + 1

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
            i = uids.first_at_or_above(a)
            j = uids.first_at_or_above(b + 1) if b < top else len(uids)
            out.extend(uids[i:j])
        return out

    def keyword_news(self, flag_lists: Iterable[tuple[str, ...]]) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS again when keywords not yet announced appear.

        RFC 3501 §7.2.6 / RFC 9051 §7.3.5: the FLAGS response lists the flags of the
        mailbox; a client refuses (or drops) a keyword it was not told about, so the news
        goes before any FETCH that shows the keyword."""
        new = {f for flags in flag_lists for f in flags
               if not f.startswith("\\") and f not in self.keywords}
        if not new:
            return []
        self.keywords |= new
        return flags_announcement(self.keywords, self.rights, self.readonly)

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
        loop_time = asyncio.get_running_loop().time()
        if (not self.event.is_set() and not (allow_expunge and self.pending_expunge)
                and loop_time - self.synced_at < QUIET_RECHECK):
            # Nothing was notified since the last look: every commit of this process (and,
            # through the change channel, of the other nodes) sets the event, so a query
            # would find nothing. Writers outside any gateway process (an offline tool) are
            # still seen within QUIET_RECHECK seconds.
            return []
        self.synced_at = loop_time
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
        if changes:
            self.contexts_changed()
        if highest > self.modseq:
            self.modseq = highest
        if allow_expunge and self.pending_expunge:
            out += self.take_expunged(sorted(self.pending_expunge), qresync)
        out += self.keyword_news(ch.flags for ch in changes if not ch.expunged)
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
        recent = len(self.recent)
        if self.contexts:
            from imap.contexts import expunged  # imap.contexts builds on this module

            # RFC 5267 §4.3: the live results lose them first, numbers still valid.
            out += expunged(self, {u for u in uids if self.seq_of(u) is not None})
            self.contexts_changed()
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
        if len(self.recent) < recent:
            # RFC 3501 §7.3.2: RECENT whenever the count changes (an IMAP4rev2 session has
            # no recent messages, so it never gets one).
            out.append(untagged_data(len(self.recent), "RECENT"))
        return out
