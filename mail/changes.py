"""Change notification between the writers of mailboxes and the IMAP sessions watching them.

RFC 3501 §5.2 / RFC 9051 §5.2: a session must learn of new mail, flag changes and expunges
made by others. Writers call :meth:`ChangeHub.changed` after their transaction commits;
every session that watches one of those folders is woken (IDLE pushes at once, other
sessions report at their next command).

In one process this is a set of events. Across several gateway nodes on one PostgreSQL
database (docs/architecture.md §4) a publisher is attached (:mod:`storage.notify`): ``changed`` also
sends the folder ids with ``NOTIFY``, and what other nodes send arrives through
:meth:`ChangeHub.wake`. With SQLite there is one node by construction, but several
worker processes (``[gateway] workers``): each worker attaches a publisher that sends its
changes to the supervisor, which wakes its own watchers and those of the other workers
(:mod:`gateway.supervisor`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

Publisher = Callable[[set[int]], None]


def account_key(account_id: int) -> int:
    """The key :meth:`ChangeHub.changed` is given when an account's list of mailboxes
    changes (created, deleted, renamed, (un)subscribed: RFC 5465 NOTIFY MailboxName and
    SubscriptionChange). Folder ids are positive, so a negative key never meets one."""
    return -account_id


class ChangeHub:
    """Folder id → the events of the sessions watching it."""

    def __init__(self) -> None:
        self._watchers: defaultdict[int, set[asyncio.Event]] = defaultdict(set)
        self._publishers: list[Publisher] = []
        self.generation = 0
        """Counts wake-ups: a read started under an older generation may predate a change,
        so readers shared between sessions (:class:`mailstore.store.SqlMailStore`) are only
        joined within one generation."""

    def watch(self, folder_id: int) -> asyncio.Event:
        """An event set whenever ``folder_id`` changes; pass it to :meth:`unwatch` when done."""
        event = asyncio.Event()
        self._watchers[folder_id].add(event)
        return event

    def unwatch(self, folder_id: int, event: asyncio.Event) -> None:
        watchers = self._watchers.get(folder_id)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[folder_id]

    def attach(self, publisher: Publisher) -> None:
        """Also hands every change to ``publisher`` (must not block: it queues and returns)."""
        self._publishers.append(publisher)

    def detach(self, publisher: Publisher) -> None:
        if publisher in self._publishers:
            self._publishers.remove(publisher)

    def changed(self, folder_ids: Iterable[int]) -> None:
        """Wakes every watcher of the given folders (call after commit, never before), here
        and, through the attached publishers, on the other nodes."""
        ids = set(folder_ids)
        self.wake(ids)
        for publish in self._publishers:
            publish(ids)

    def wake(self, folder_ids: Iterable[int]) -> None:
        """Wakes the local watchers only (what a remote node reported)."""
        self.generation += 1
        for folder_id in set(folder_ids):
            for event in self._watchers.get(folder_id, ()):
                event.set()

    def wake_all(self) -> None:
        """Wakes every watcher: after notifications may have been missed (reconnection)."""
        self.generation += 1
        for watchers in self._watchers.values():
            for event in watchers:
                event.set()
