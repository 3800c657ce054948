"""Change notification between the writers of mailboxes and the IMAP sessions watching them.

RFC 3501 §5.2 / RFC 9051 §5.2: a session must learn of new mail, flag changes and expunges
made by others. Writers call :meth:`ChangeHub.changed` after their transaction commits;
every session that watches one of those folders is woken (IDLE pushes at once, other
sessions report at their next command). In one process this is a set of events; across
several gateway nodes the same hub is fed by PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable


class ChangeHub:
    """Folder id → the events of the sessions watching it."""

    def __init__(self) -> None:
        self._watchers: defaultdict[int, set[asyncio.Event]] = defaultdict(set)

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

    def changed(self, folder_ids: Iterable[int]) -> None:
        """Wakes every watcher of the given folders (call after commit, never before)."""
        for folder_id in set(folder_ids):
            for event in self._watchers.get(folder_id, ()):
                event.set()
