"""Mailbox commands: LIST, LSUB, NAMESPACE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
STATUS (RFC 9051 §6.3, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).

The hierarchy delimiter is ``/``. Parents are created with their children, and a folder with
children cannot be deleted, so no folder of one's own is ever ``\\Noselect`` (Outlook hides
the mail of such levels); only the ``Shared`` namespace levels above other accounts' folders,
which hold no mail, are.
"""

from __future__ import annotations

import re

from accounts.delegations import ALL_RIGHTS
from imap.commands import AUTHENTICATED, register
from imap.protocol import Atom, ImapRefusal, ResponseCode, encode_mailbox, untagged_data
from imap.protocol import commands as c
from imap.protocol.response import Value
from imap.session import Done, Session
from imap.shared import PREFIX, Access, is_shared_name, resolve, shared_access
from mailstore.objectid import mailbox_id
from mailstore.store import DELIMITER, AlreadyExists, FolderInfo

SPECIAL_USES = frozenset({"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash", "\\Flagged",
                          "\\All"})
_STATUS_DEFAULT = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def mailbox_name(session: Session, name: str) -> str:
    """The folder name a client means, checked (RFC 9051 §5.1)."""
    name = session.ctx.workarounds.mailbox_name(name)
    if name.upper() == "INBOX" or name[:6].upper() == "INBOX/":
        name = "INBOX" + name[5:]
    if (not name or name.startswith(DELIMITER) or name.endswith(DELIMITER)
            or DELIMITER * 2 in name):
        raise ImapRefusal("NO", "CANNOT", f"Invalid mailbox name {name[:80]!r}: names are "
                          "not empty and have no empty level between '/'")
    if any(ch in name for ch in "*%") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ImapRefusal("NO", "CANNOT", f"Invalid mailbox name {name[:80]!r}: '*', '%' and "
                          "control characters are not allowed")
    return name


async def require_access(session: Session, name: str, *, missing: str = "NONEXISTENT"
                         ) -> Access:
    """The mailbox ``name`` means (own, or another account's under ``Shared/``) with the
    session's RFC 4314 rights on it; ``NO [missing]`` when there is none."""
    access = await resolve(session, mailbox_name(session, name))
    if access is None:
        raise ImapRefusal("NO", missing, f"Mailbox {name[:80]!r} does not exist")
    return access


async def require_folder(session: Session, name: str) -> FolderInfo:
    return (await require_access(session, name)).folder


def refuse_shared(name: str, action: str) -> None:
    """Folders under ``Shared/`` are managed by their owner, in the owner's own session."""
    if is_shared_name(name):
        raise ImapRefusal("NO", "NOPERM", f"Cannot {action} {name[:80]!r}: mailboxes under "
                          f"{PREFIX}/ belong to other accounts and are managed by their owner")


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: ``*`` matches anything, ``%`` anything but the delimiter."""
    full = reference + pattern
    out = []
    for ch in full:
        out.append(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _matches(regex: re.Pattern[str], name: str, reference: str, pattern: str) -> bool:
    if regex.match(name):
        return True
    # INBOX is case-insensitive (RFC 9051 §5.1): "inbox" and "Inbox/%" match it too.
    full = reference + pattern
    if name == "INBOX" or name.startswith("INBOX/"):
        if full[:5].upper() == "INBOX":
            return bool(_pattern("", "INBOX" + full[5:]).match(name))
    return False


async def status_values(
    session: Session, folder: FolderInfo, items: tuple[str, ...]
) -> list[Value]:
    store = session.ctx.store
    counts = None
    if any(i in items for i in ("MESSAGES", "UNSEEN", "SIZE", "DELETED", "RECENT")):
        # SIZE needs the messages' octets (a query); the rest comes from the folder index.
        counts = await store.counts(folder.id, size="SIZE" in items)
    out: list[Value] = []
    for item in items:
        value: int | None = None
        if item == "MESSAGES" and counts:
            value = counts.messages
        elif item == "UNSEEN" and counts:
            value = counts.unseen
        elif item == "SIZE" and counts:
            value = counts.size  # RFC 8438
        elif item == "DELETED" and counts:
            value = counts.deleted  # RFC 9051 §6.3.11
        elif item == "RECENT" and counts:
            value = counts.recent
        elif item == "UIDNEXT":
            value = folder.uidnext
        elif item == "UIDVALIDITY":
            value = folder.uidvalidity
        elif item == "HIGHESTMODSEQ":
            value = folder.highestmodseq  # RFC 7162 §3.1.2.1, never 0
            session.enable_condstore()  # RFC 7162 §3.1.2.1
        elif item == "APPENDLIMIT":
            value = session.ctx.settings.imap.max_literal_size  # RFC 7889
        elif item == "MAILBOXID":  # RFC 8474 §4.2
            out += [Atom(item), [Atom(mailbox_id(folder.uidvalidity))]]
        if value is not None:
            out += [Atom(item), value]
    return out


def _shared_levels(shared: list[FolderInfo]) -> list[FolderInfo]:
    """``Shared`` and ``Shared/<owner>``: listed as \\Noselect levels above shared folders."""
    names = sorted({PREFIX} | {DELIMITER.join(f.name.split(DELIMITER)[:2]) for f in shared}) \
        if shared else []
    return [FolderInfo(0, n, None, 0, 0, 0, True) for n in names]


def _has_children(name: str, names: set[str]) -> bool:
    prefix = name + DELIMITER
    return any(n.startswith(prefix) for n in names)


def _wire_name(session: Session, name: str) -> Atom:
    return Atom(encode_mailbox(name, utf8=session.utf8).decode("utf-8", "surrogateescape"))


async def _list(session: Session, reference: str, patterns: tuple[str, ...], *,
                selection: frozenset[str], returns: frozenset[str], status: tuple[str, ...],
                verb: str) -> None:
    """LIST and LSUB, with the RFC 5258 selection and return options.

    Every candidate name is one of: an own folder, a shared folder (always subscribed: the
    owner's subscription flag is theirs), a ``Shared`` level (\\Noselect, never
    subscribed) or a subscribed name whose mailbox was deleted (\\NonExistent).
    """
    assert session.identity is not None
    if patterns == ("",):
        # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root name.
        session.write(untagged_data(verb, [Atom("\\Noselect")], b"/", b""))
        return
    store = session.ctx.store
    account_id = session.identity.account_id
    own = await store.list_folders(account_id)
    reachable = [a for a in await shared_access(session) if "l" in a.rights]
    shared = [a.folder for a in reachable]
    unreadable = {a.folder.id for a in reachable if "r" not in a.rights}
    rights_of = {a.folder.id: a.rights for a in reachable}
    levels = _shared_levels(shared)
    folders: dict[str, FolderInfo] = {f.name: f for f in own}
    subscribed = {f.name for f in own if f.subscribed} | {f.name for f in shared}
    folders.update((f.name, f) for f in shared)
    level_names = {lv.name for lv in levels}
    lost: set[str] = set()
    sub_only = "SUBSCRIBED" in selection or verb == "LSUB"
    if sub_only:
        # RFC 3501 §6.3.6: a subscription outlives its mailbox.
        lost = set(await store.lost_subscriptions(account_id)) - set(folders)
        subscribed |= lost
    names = set(folders) | level_names
    regexes = [(_pattern(reference, p), p) for p in patterns]

    def matches(name: str) -> bool:
        return any(_matches(rx, name, reference, p) for rx, p in regexes)

    show_subscribed = verb != "LSUB" and ("SUBSCRIBED" in returns or "SUBSCRIBED" in selection)
    recursive = "RECURSIVEMATCH" in selection and verb == "LIST"
    candidates = set(names) | lost
    if recursive:
        # RFC 5258 §3.5: parents of subscribed names may match though they do not exist.
        for n in subscribed:
            levels_of = n.split(DELIMITER)
            candidates.update(DELIMITER.join(levels_of[:k]) for k in range(1, len(levels_of)))
    order = sorted(candidates, key=lambda n: (n not in level_names, n))
    for name in order:
        if not matches(name):
            continue
        folder = folders.get(name)
        if "SPECIAL-USE" in selection and (folder is None or not folder.special_use):
            continue
        childinfo = False
        if sub_only and name not in subscribed:
            # RFC 5258 §3.5 CHILDINFO: listed only for a subscribed descendant.
            if not (recursive and _has_children(name, subscribed)):
                continue
            childinfo = True
        attrs: list[Value] = []
        if folder is None and name not in level_names:
            attrs.append(Atom("\\NonExistent"))  # RFC 5258 §3.4, implies \\Noselect
        else:
            if name in level_names:
                # RFC 2342 §5: the namespace prefix and each owner's level hold no messages.
                attrs.append(Atom("\\Noselect"))
            attrs.append(Atom("\\HasChildren" if _has_children(name, names)
                              else "\\HasNoChildren"))  # RFC 3348
        if show_subscribed and name in subscribed:
            attrs.append(Atom("\\Subscribed"))  # RFC 5258 §3.4
        if folder is not None and folder.special_use:
            attrs.append(Atom(folder.special_use))  # RFC 6154 §2
        parts: list[Value] = [verb, attrs, b"/", _wire_name(session, name)]
        if childinfo:
            parts.append([b"CHILDINFO", [b"SUBSCRIBED"]])
        session.write(untagged_data(*parts))
        if status and folder is not None and folder.id and folder.id not in unreadable:
            # RFC 5819 §2: one STATUS after each LIST of a selectable mailbox.
            values = await status_values(session, folder, status)
            session.write(untagged_data("STATUS", _wire_name(session, name), values))
        if "MYRIGHTS" in returns and folder is not None and folder.id:
            # RFC 8440 §3: the rights of each listed mailbox that exists, after its LIST.
            session.write(untagged_data("MYRIGHTS", _wire_name(session, name),
                                        Atom(rights_of.get(folder.id, ALL_RIGHTS))))


@register(c.List, AUTHENTICATED)
async def list_(session: Session, cmd: c.List) -> Done | None:
    await _list(session, cmd.reference, cmd.patterns, selection=cmd.selection,
                returns=cmd.returns, status=cmd.status_items, verb="LIST")
    return None


@register(c.Lsub, AUTHENTICATED)
async def lsub(session: Session, cmd: c.Lsub) -> Done | None:
    await _list(session, cmd.reference, (cmd.pattern,), selection=frozenset(),
                returns=frozenset(), status=(), verb="LSUB")
    return None


@register(c.Namespace, AUTHENTICATED)
async def namespace(session: Session, cmd: c.Namespace) -> Done | None:
    # RFC 2342 §5: personal "" with "/", no other users' namespace, and the shared one
    # where organisational and delegated mailboxes appear.
    session.write(untagged_data("NAMESPACE", [[b"", b"/"]], None,
                                [[(PREFIX + DELIMITER).encode(), b"/"]]))
    return None


@register(c.Create, AUTHENTICATED)
async def create(session: Session, cmd: c.Create) -> Done | None:
    assert session.identity is not None
    raw = cmd.mailbox.rstrip(DELIMITER) if len(cmd.mailbox) > 1 else cmd.mailbox
    name = mailbox_name(session, raw)  # RFC 9051 §6.3.4: a trailing delimiter is dropped
    refuse_shared(name, "create")
    special = None
    for use in cmd.special_use:
        norm = next((s for s in SPECIAL_USES if s.lower() == use.lower()), None)
        if norm is None:
            raise ImapRefusal("NO", "USEATTR", f"Special-use attribute {use[:40]} is not "
                              "supported (RFC 6154)")
        special = norm
    if len(cmd.special_use) > 1:
        raise ImapRefusal("NO", "USEATTR", "Only one special-use attribute per mailbox")
    store = session.ctx.store
    if await store.get_folder(session.identity.account_id, name) is not None:
        raise ImapRefusal("NO", "ALREADYEXISTS", f"Mailbox {name[:80]!r} already exists")
    try:
        created = await store.create_folder(session.identity.account_id, name, special)
    except AlreadyExists:
        raise ImapRefusal("NO", "ALREADYEXISTS", f"Mailbox {name[:80]!r} already exists"
                          ) from None
    # RFC 8474 §4.1: the new mailbox's MAILBOXID in the tagged OK.
    return Done("Completed", ResponseCode("MAILBOXID", f"({mailbox_id(created.uidvalidity)})"))


@register(c.Delete, AUTHENTICATED)
async def delete(session: Session, cmd: c.Delete) -> Done | None:
    assert session.identity is not None
    refuse_shared(mailbox_name(session, cmd.mailbox), "delete")
    folder = await require_folder(session, cmd.mailbox)
    if folder.name == "INBOX":
        raise ImapRefusal("NO", "CANNOT", "INBOX cannot be deleted (RFC 9051 §6.3.5)")
    folders = await session.ctx.store.list_folders(session.identity.account_id)
    if any(f.name.startswith(folder.name + DELIMITER) for f in folders):
        raise ImapRefusal("NO", "HASCHILDREN", f"Mailbox {folder.name[:80]!r} has sub-folders: "
                          "delete them first")
    if session.selected is not None and session.selected.folder_id == folder.id:
        session.close_selected()
    await session.ctx.store.delete_folder(folder.id)
    return None


@register(c.Rename, AUTHENTICATED)
async def rename(session: Session, cmd: c.Rename) -> Done | None:
    assert session.identity is not None
    store = session.ctx.store
    refuse_shared(mailbox_name(session, cmd.mailbox), "rename")
    folder = await require_folder(session, cmd.mailbox)
    new = mailbox_name(session, cmd.new_name)
    refuse_shared(new, "rename a mailbox to")
    if await store.get_folder(session.identity.account_id, new) is not None:
        raise ImapRefusal("NO", "ALREADYEXISTS", f"Mailbox {new[:80]!r} already exists")
    if new.startswith(folder.name + DELIMITER):
        raise ImapRefusal("NO", "CANNOT", "A mailbox cannot be moved inside itself")
    if folder.name == "INBOX":
        # RFC 3501 §6.3.5: renaming INBOX moves its messages to the new name; INBOX stays,
        # empty, and its sub-folders are not renamed.
        target = await store.create_folder(session.identity.account_id, new)
        uids = list((await store.snapshot(folder.id))[1])
        if uids:
            await store.copy(folder.id, uids, target.id, move=True)
        return None
    await store.rename_folder(folder.id, new)
    if session.selected is not None and session.selected.folder_id == folder.id:
        session.selected.name = new
    return None


@register(c.Subscribe, AUTHENTICATED)
async def subscribe(session: Session, cmd: c.Subscribe) -> Done | None:
    access = await require_access(session, cmd.mailbox)
    if access.shared:
        return None  # shared folders are always listed as subscribed; the owner's flag stays
    await session.ctx.store.set_subscribed(access.folder.id, True)
    return None


@register(c.Unsubscribe, AUTHENTICATED)
async def unsubscribe(session: Session, cmd: c.Unsubscribe) -> Done | None:
    assert session.identity is not None
    name = mailbox_name(session, cmd.mailbox)
    if await session.ctx.store.forget_subscription(session.identity.account_id, name):
        return None  # RFC 3501 §6.3.7: the name of a deleted mailbox can be unsubscribed
    access = await require_access(session, cmd.mailbox)
    if access.shared:
        return None
    await session.ctx.store.set_subscribed(access.folder.id, False)
    return None


@register(c.Status, AUTHENTICATED)
async def status(session: Session, cmd: c.Status) -> Done | None:
    access = await require_access(session, cmd.mailbox)
    access.require("r", "read the status")  # RFC 4314 §4: STATUS needs "r"
    folder = access.folder
    values = await status_values(session, folder, cmd.items or _STATUS_DEFAULT)
    session.write(untagged_data("STATUS", Atom(encode_mailbox(
        folder.name, utf8=session.utf8).decode("utf-8", "surrogateescape")), values))
    return None
