"""NOTIFY (RFC 5465): changes of other mailboxes, and of the selected one, pushed unasked.

``NOTIFY SET`` starts one task per session (:class:`Notifier`) fed by the same
:class:`~mail.changes.ChangeHub` events as IDLE: each mailbox in scope is watched, plus
one key per account (:func:`mail.changes.account_key`) that the mailbox store wakes when
a mailbox is created, deleted, renamed or (un)subscribed, by IMAP or the webmail. The
task writes only between commands or while the client is in IDLE (RFC 5465 §3: at any
time, but never inside another command's answer), and for the selected mailbox only
between commands (IDLE reports its changes itself):

* selected mailbox (``SELECTED``): EXISTS / EXPUNGE / FETCH FLAGS as a NOOP would say them,
  without waiting for a command (FETCH only with FlagChange); ``SELECTED-DELAYED`` keeps
  the EXPUNGEs for the next command that may send them (§5.1).
* other mailboxes: ``* STATUS name (MESSAGES n UIDNEXT n UNSEEN n)`` (and HIGHESTMODSEQ
  once CONDSTORE is on) when their messages or flags changed, as the events asked
  (MessageNew / MessageExpunge / FlagChange, §5.2-5.3);
* ``MailboxName``: ``* LIST`` of a created mailbox, ``\\NonExistent`` for a deleted one,
  ``OLDNAME`` for a renamed one (§5.4, RFC 5258 §3.5); ``SubscriptionChange``: ``* LIST``
  with or without ``\\Subscribed`` (§5.5).

Scope: the personal namespace (``PERSONAL``, ``INBOXES`` = INBOX) and, for ``SUBSCRIBED``,
``SUBTREE`` and ``MAILBOXES``, the shared mailboxes too (``Shared/<owner>/...``, RFC 2342:
delegated and organisational mailboxes) on which the user holds ``l`` or ``r`` (RFC 4314),
as LIST shows them (always subscribed); their message events need ``r`` (STATUS, RFC 4314
§4). The owners' mailbox lists are watched too, so a mailbox they create, rename or delete
is announced (MailboxName); a delegation granted or withdrawn (the access version of
:mod:`accounts.access`) brings the shared mailboxes in or out of view at once.
``(STATUS)`` sends the STATUS of every mailbox in scope at once (§3). Annotation and
metadata events, and MessageNew's FETCH attributes, are refused with ``NO [BADEVENT]`` /
``NO [CANNOT]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import Iterable
from dataclasses import replace

from imap.commands import AUTHENTICATED, register
from imap.commands.mailboxes import status_values
from imap.protocol import Atom, ImapRefusal, encode_mailbox, untagged_data
from imap.protocol import commands as c
from imap.protocol import ext_commands as x
from imap.protocol.response import Value
from imap.session import Done, Session
from imap.shared import PREFIX_SLASH, Access, shared_access, shared_name
from mail.changes import account_key as account_channel
from mailstore.store import DELIMITER, FolderInfo

log = logging.getLogger("mssante.imap")

SUPPORTED_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
                    "SubscriptionChange")
_MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})
_SELECTED = ("SELECTED", "SELECTED-DELAYED")
_FETCH = re.compile(rb"\* [0-9]+ FETCH ")

_NOTIFIERS: weakref.WeakKeyDictionary[Session, Notifier] = weakref.WeakKeyDictionary()


def _check(groups: tuple[x.EventGroup, ...]) -> None:
    """RFC 5465 §5 and §6: the combinations NOTIFY SET accepts."""
    unsupported = sorted({e for g in groups for e in g.events} - set(SUPPORTED_EVENTS))
    if unsupported:
        raise ImapRefusal("NO", f"BADEVENT ({' '.join(SUPPORTED_EVENTS)})",
                          f"Event {unsupported[0]} is not supported")
    if sum(g.filter in _SELECTED for g in groups) > 1:
        raise ImapRefusal("BAD", None, "SELECTED or SELECTED-DELAYED may be given once")
    for g in groups:
        events = set(g.events)
        # §5: MessageNew and MessageExpunge go together; FlagChange needs them.
        if ("MessageNew" in events) != ("MessageExpunge" in events):
            raise ImapRefusal("BAD", None, "MessageNew and MessageExpunge go together "
                              "(RFC 5465 §5)")
        if "FlagChange" in events and "MessageNew" not in events:
            raise ImapRefusal("BAD", None, "FlagChange needs MessageNew and MessageExpunge "
                              "(RFC 5465 §5)")
        if g.filter in _SELECTED and events - _MESSAGE_EVENTS:
            raise ImapRefusal("BAD", None, "Only message events apply to the selected "
                              "mailbox (RFC 5465 §6)")
        if g.fetch_atts:
            raise ImapRefusal("NO", "CANNOT", "FETCH attributes with MessageNew are not "
                              "supported; fetch the new messages after their EXISTS")


def _canonical(name: str) -> str:
    """A mailbox name of a filter as the shared names are built (:func:`imap.shared.
    shared_name`): the owner's address in lower case, ``INBOX`` in upper case."""
    if not name.startswith(PREFIX_SLASH):
        return name
    owner, sep, rest = name[len(PREFIX_SLASH):].partition(DELIMITER)
    if not sep:
        return PREFIX_SLASH + owner.lower()
    if rest.upper() == "INBOX" or rest[:6].upper() == "INBOX/":
        rest = "INBOX" + rest[5:]
    return shared_name(owner.lower(), rest)


class Notifier:
    """The NOTIFY state and task of one session."""

    def __init__(self, session: Session, groups: tuple[x.EventGroup, ...]) -> None:
        self.session = session
        selected = [g for g in groups if g.filter in _SELECTED]
        self.selected: x.EventGroup | None = selected[0] if selected else None
        self.groups = [g for g in groups if g.filter not in _SELECTED]
        self.folders: dict[int, FolderInfo] = {}
        self.shared: dict[int, Access] = {}  # shared mailboxes in view, by folder id
        self.access_version: int | None = None  # accounts.access version of that view
        self.known: dict[int, tuple[int, ...]] = {}  # folder → (messages, uidnext, unseen, modseq)
        self.watches: dict[int, asyncio.Event] = {}
        self.task: asyncio.Task[None] | None = None

    # -- scope -------------------------------------------------------------------------
    @staticmethod
    def _in(group: x.EventGroup, folder: FolderInfo) -> bool:
        name = folder.name
        shared = name.startswith(PREFIX_SLASH)
        if group.filter == "PERSONAL":
            return not shared  # RFC 5465 §6: the personal namespace only
        if group.filter == "INBOXES":
            return name == "INBOX"  # where mail is delivered here
        if group.filter == "SUBSCRIBED":
            return folder.subscribed
        wanted = [_canonical(m) for m in group.mailboxes]
        if group.filter == "MAILBOXES":
            return name in wanted
        if group.filter == "SUBTREE":
            return any(name == m or name.startswith(m + DELIMITER) for m in wanted)
        return False

    def events_for(self, folder: FolderInfo) -> set[str]:
        # §6: the first group that names a mailbox decides its events.
        for group in self.groups:
            if self._in(group, folder):
                return set(group.events)
        return set()

    def _selected_id(self) -> int | None:
        """The selected mailbox: its changes go out as EXISTS/EXPUNGE/FETCH (RFC 5465
        §5.2), never as STATUS, whether or not SELECTED was given."""
        sel = self.session.selected
        return sel.folder_id if sel is not None else None

    # -- life cycle --------------------------------------------------------------------
    async def start(self, initial_status: bool) -> None:
        await self._refresh(report=False)
        if initial_status:
            for folder in self.folders.values():
                if folder.id != self._selected_id() and self.events_for(folder):
                    await self._status(folder, force=True)
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.stop_watching()

    def _watch(self, ids: Iterable[int]) -> None:
        changes = self.session.ctx.changes
        wanted = set(ids)
        for folder_id in list(self.watches):
            if folder_id not in wanted:
                changes.unwatch(folder_id, self.watches.pop(folder_id))
        for folder_id in wanted - set(self.watches):
            self.watches[folder_id] = changes.watch(folder_id)

    async def _refresh(self, *, report: bool) -> None:
        """Lists the account's mailboxes again: LIST for what was created, deleted,
        renamed or (un)subscribed since the last time, and the watches follow."""
        identity = self.session.identity
        assert identity is not None
        self.access_version = self.session.ctx.authenticator.access.version
        folders = {f.id: f for f in await self.session.ctx.store.list_folders(
            identity.account_id)}
        shared: dict[int, Access] = {}
        for access in await shared_access(self.session):
            if "l" in access.rights or "r" in access.rights:
                shared[access.folder.id] = access
                # As LIST shows them: a shared mailbox is always subscribed.
                folders[access.folder.id] = replace(access.folder, subscribed=True)
        self.shared = shared
        if report:
            for line in self._list_changes(self.folders, folders):
                self.session.write(line)
        self.folders = folders
        for folder_id in set(self.known) - set(folders):
            del self.known[folder_id]
        in_scope = [f.id for f in folders.values() if self.events_for(f) & _MESSAGE_EVENTS
                    and (f.id not in shared or "r" in shared[f.id].rights)]
        for folder_id in in_scope:
            if folder_id not in self.known:
                self.known[folder_id] = await self._values(folders[folder_id])
        owners = {account_channel(a.owner_id) for a in shared.values()}
        self._watch([*in_scope, account_channel(identity.account_id), *owners])

    def _list_changes(self, old: dict[int, FolderInfo], new: dict[int, FolderInfo]
                      ) -> list[bytes]:
        out: list[bytes] = []
        for folder_id, folder in new.items():
            before = old.get(folder_id)
            events = self.events_for(folder) | (self.events_for(before) if before else set())
            if before is None:
                if "MailboxName" in events:
                    out.append(self._list(folder))
            elif before.name != folder.name:
                if "MailboxName" in events:
                    # RFC 5465 §5.4 / RFC 5258 §3.5: the new name with its OLDNAME.
                    out.append(self._list(folder, oldname=before.name))
            elif before.subscribed != folder.subscribed and "SubscriptionChange" in events:
                out.append(self._list(folder))
        for folder_id, before in old.items():
            if folder_id not in new and "MailboxName" in self.events_for(before):
                out.append(self._list(before, gone=True))
        return out

    def _name(self, name: str) -> Atom:
        utf8 = self.session.utf8
        return Atom(encode_mailbox(name, utf8=utf8).decode("utf-8", "surrogateescape"))

    def _list(self, folder: FolderInfo, *, oldname: str | None = None, gone: bool = False
              ) -> bytes:
        attrs: list[Value] = []
        if gone:
            attrs.append(Atom("\\NonExistent"))
        elif folder.subscribed:
            attrs.append(Atom("\\Subscribed"))
        parts: list[Value] = ["LIST", attrs, b"/", self._name(folder.name)]
        if oldname is not None:
            parts.append([b"OLDNAME", [self._name(oldname)]])
        return untagged_data(*parts)

    async def _values(self, folder: FolderInfo) -> tuple[int, ...]:
        counts = await self.session.ctx.store.counts(folder.id, size=False)
        return counts.messages, folder.uidnext, counts.unseen, folder.highestmodseq

    async def _status(self, folder: FolderInfo, *, force: bool = False) -> None:
        """``* STATUS`` of a mailbox whose messages changed in a way the events ask for."""
        values = await self._values(folder)
        before = self.known.get(folder.id)
        self.known[folder.id] = values
        events = self.events_for(folder)
        if not force:
            if before is None or before == values:
                return
            new = values[1] != before[1]
            gone = values[0] < before[0] + (values[1] - before[1])
            flags = values[2] != before[2] or values[3] != before[3]
            if not ((new and "MessageNew" in events) or (gone and "MessageExpunge" in events)
                    or (flags and "FlagChange" in events)):
                return
        items: tuple[str, ...] = ("MESSAGES", "UIDNEXT", "UNSEEN")
        if self.session.condstore:
            items += ("HIGHESTMODSEQ",)
        self.session.write(untagged_data("STATUS", self._name(folder.name),
                                         await status_values(self.session, folder, items)))

    # -- the task ----------------------------------------------------------------------
    async def _quiet(self) -> bool:
        """Waits until no command other than IDLE runs; True when none runs at all."""
        session = self.session
        while session.running is not None and not isinstance(session.running, c.Idle):
            await session.between_commands.wait()
        return session.running is None

    async def _run(self) -> None:
        session = self.session
        try:
            while not session.done.done():
                sel = session.selected
                waits: list[asyncio.Future[object]] = [
                    asyncio.ensure_future(e.wait()) for e in self.watches.values()]
                watch_selected = (sel is not None and self.selected is not None
                                  and "MessageNew" in self.selected.events
                                  and not isinstance(session.running, c.Idle))
                if watch_selected and sel is not None:
                    waits.append(asyncio.ensure_future(sel.event.wait()))
                # A delegation granted or withdrawn changes which shared mailboxes are seen.
                waits.append(asyncio.ensure_future(
                    session.ctx.authenticator.access.changed().wait()))
                waits.append(session.done)  # type: ignore[arg-type]
                if not isinstance(session.running, c.Idle) and session.running is not None:
                    waits.append(asyncio.ensure_future(session.between_commands.wait()))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        if w is not session.done and not w.done():
                            w.cancel()
                if session.done.done():
                    return
                idle_free = await self._quiet()
                await self._deliver(idle_free)
                await session.flush()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError):
            return
        except Exception:  # noqa: BLE001 - NOTIFY stops, the session goes on
            log.exception("imap_notify_failed", extra=session.log_fields())
        finally:
            self.stop_watching()

    def stop_watching(self) -> None:
        changes = self.session.ctx.changes
        for folder_id, event in self.watches.items():
            changes.unwatch(folder_id, event)
        self.watches.clear()

    async def _deliver(self, no_command: bool) -> None:
        session = self.session
        assert session.identity is not None
        # The account's mailbox list, or a shared mailbox owner's, changed; or access did
        # (a withdrawn delegation: nothing more of that mailbox is told, RFC 4314 §4).
        channels = [e for key, e in self.watches.items() if key < 0 and e.is_set()]
        if channels or self.access_version != session.ctx.authenticator.access.version:
            for channel in channels:
                channel.clear()
            await self._refresh(report=True)
        selected_id = self._selected_id()
        for folder_id, event in list(self.watches.items()):
            if folder_id < 0 or not event.is_set():
                continue
            event.clear()
            folder = self.folders.get(folder_id)
            if folder is None or folder_id == selected_id:
                continue
            access = self.shared.get(folder_id)
            if access is None:
                fresh = await session.ctx.store.get_folder(session.identity.account_id,
                                                           folder.name)
            else:
                fresh = await session.ctx.store.get_folder(access.owner_id,
                                                           access.stored_name)
                if fresh is not None:
                    fresh = replace(fresh, name=folder.name, subscribed=True)
            if fresh is not None:
                self.folders[folder_id] = fresh
                await self._status(fresh)
        sel = session.selected
        if (no_command and sel is not None and self.selected is not None
                and "MessageNew" in self.selected.events and sel.event.is_set()):
            # RFC 5465 §5.1: SELECTED-DELAYED keeps EXPUNGE for a command that allows it.
            lines = await sel.sync(
                session.ctx.store, allow_expunge=self.selected.filter == "SELECTED",
                condstore=session.condstore, qresync=session.qresync, rev2=session.rev2)
            flags = "FlagChange" in self.selected.events
            for line in lines:
                # Without FlagChange the client asked not to be told of flag changes.
                if flags or not _FETCH.match(line):
                    session.write(line)
            await session.report_contexts(allow_expunge=self.selected.filter == "SELECTED")


@register(x.Notify, AUTHENTICATED)
async def notify(session: Session, cmd: x.Notify) -> Done | None:
    old = _NOTIFIERS.pop(session, None)
    if old is not None:
        old.stop()
    if cmd.groups is None:  # NOTIFY NONE
        return None
    _check(cmd.groups)
    notifier = Notifier(session, cmd.groups)
    await notifier.start(cmd.status)
    _NOTIFIERS[session] = notifier
    task = notifier.task
    if task is not None:
        task.add_done_callback(lambda t: _NOTIFIERS.pop(session, None)
                               if _NOTIFIERS.get(session) is notifier else None)
    with contextlib.suppress(Exception):
        session.done.add_done_callback(lambda _: notifier.stop())
    return None
