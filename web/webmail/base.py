"""What every page of the webmail shares: the signed-in account, the mailboxes it may open
(its own folders, and the folders of ORG and PER mailboxes delegated to it with their RFC 4314
rights), and the rights check of every request.

The webmail reads and writes through the same :class:`~mailstore.store.MailStore` as the IMAP
server (one folder index, one change hub): what the webmail changes reaches IDLE sessions,
and what a client changes shows at the next page. Folders are named in URLs by their id; an
id the session may not reach answers 404 exactly like one that does not exist, so that ids
of other accounts reveal nothing.

Page modules (``folders``, ``reading``, and the writing side's) each define
``routes(webmail) -> list[BaseRoute]``; :func:`web.webmail.routes` gathers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from accounts.delegations import ALL_RIGHTS
from mailstore.folderindex import FolderIndexes
from mailstore.readproof import ReadProofs
from mailstore.store import FolderInfo, MailStore, SharedFolder
from storage import access
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from web.pages import Forbidden, Pages
from web.sessions import Session, SessionStore

PREFIX = "/courrier"
MAX_HELD_COUNTS = 100_000
"""Unread counts of folders held in memory (each is a few dozen bytes)."""
SPECIAL_NAMES = {
    "INBOX": "Boîte de réception", "\\Sent": "Envoyés", "\\Drafts": "Brouillons",
    "\\Trash": "Corbeille", "\\Archive": "Archives", "\\Junk": "Indésirables",
}
"""French names of the special folders (by name for INBOX, else by RFC 6154 special use)."""

RIGHT_WORDS = {
    "l": "voir", "r": "lire", "s": "marquer lu", "w": "marquer", "i": "déposer",
    "p": "écrire", "k": "créer des dossiers", "x": "supprimer des dossiers",
    "t": "supprimer des messages", "e": "effacer", "a": "administrer",
}
"""What each RFC 4314 right lets a person do, in French (shown beside shared mailboxes)."""


class NotFound(Exception):
    """A folder, message or attachment that does not exist or is not the session's to see:
    both answer 404 with the same French sentence."""


@dataclass
class WebmailDeps:
    """What the webmail needs from the gateway."""

    db: Database
    sessions: SessionStore
    store: MailStore
    reads: ReadProofs | None = None
    """None: readings are not proved (tests of the pages alone)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Parts the writing side needs (pipeline, directory…), by name."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One folder as the signed-in account reaches it: its rights and how it is shown."""

    folder: FolderInfo
    rights: str
    owner_id: int
    owner: str
    shared: bool
    unread: int = 0

    @property
    def id(self) -> int:
        return self.folder.id

    @property
    def label(self) -> str:
        """The French name of a special folder, else the last level of its name."""
        special = SPECIAL_NAMES.get(self.folder.name if self.folder.name == "INBOX"
                                    else (self.folder.special_use or ""))
        return special or self.folder.name.rsplit("/", 1)[-1]

    @property
    def depth(self) -> int:
        return self.folder.name.count("/")

    @property
    def rights_text(self) -> str:
        return ", ".join(RIGHT_WORDS[r] for r in self.rights if r in RIGHT_WORDS)

    def may(self, rights: str) -> bool:
        return all(r in self.rights for r in rights)


def effective_rights(shared: SharedFolder) -> str:
    """RFC 4314 §2: a folder's ACL row naming the account overrides the account-wide
    delegation (the IMAP server decides the same way, ``imap/shared.py``)."""
    letters = shared.acl_rights if shared.acl_rights is not None else (
        shared.delegated_rights or "")
    return "".join(r for r in ALL_RIGHTS if r in letters)


WebmailHandler = Callable[[Request, Session, FormData | None, Account], Awaitable[Response]]


class Webmail(Pages):
    """Shared helpers of the webmail's pages over :class:`WebmailDeps`."""

    def __init__(self, deps: WebmailDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps
        self.store = deps.store
        # (folder id, UIDVALIDITY, HIGHESTMODSEQ) → unread count: every change to a folder's
        # messages raises its HIGHESTMODSEQ, so a held count is exact and a 100,000-message
        # folder is counted once per change, not once per page.
        self._unread: dict[int, tuple[tuple[int, int], int]] = {}
        self.access_version: int | None = None
        """The access version of :mod:`storage.access` as the latest signed-in request read it."""

    # -- plumbing ------------------------------------------------------------------------
    def page(self, handler: WebmailHandler) -> Callable[[Request], Awaitable[Response]]:
        """:meth:`Pages._page` for signed-in pages: the account is read on every request
        (a suspended account is out at once); signed out goes to the login page; a
        :class:`NotFound` answers 404."""
        async def signed_in(request: Request, session: Session,
                            form: FormData | None) -> Response:
            user = await self._signed_user(session)
            if user is None:
                return self._see_other("/connexion")
            try:
                return await handler(request, session, form, user)
            except NotFound:
                return self._render(request, session, "message.html", status=404, user=user,
                                    title="Introuvable",
                                    lines=["Ce dossier ou ce message n'existe pas ou ne vous "
                                           "est pas accessible."])

        return self._page(signed_in)

    async def _signed_user(self, session: Session) -> Account | None:
        """:meth:`Pages._user`, and the access version read in the same transaction: the
        delegations and ACL rows read at that version are kept (see :meth:`shared_mailboxes`)
        until it moves, which every grant, withdrawal or suspension does."""
        account_id = session.data.get("account_id")
        if account_id is None:
            return None
        async with self.db.read() as conn:
            account = await account_rows.get_by_id(conn, int(account_id))
            version = await access.current(conn)
        if account is None or account.status != "active":
            session.data.clear()
            return None
        # The highest read: a request that read an older one later still sees fresh rights.
        self.access_version = max(self.access_version or 0, version)
        return account

    @staticmethod
    def url(*parts: object) -> str:
        return "/".join([PREFIX, *(str(p) for p in parts)])

    # -- mailboxes -----------------------------------------------------------------------
    async def unread(self, folder: FolderInfo) -> int:
        mark = (folder.uidvalidity, folder.highestmodseq)
        held = self._unread.get(folder.id)
        if held is not None and held[0] == mark:
            return held[1]
        indexes = getattr(self.store, "indexes", None)
        if isinstance(indexes, FolderIndexes) and indexes.holds(folder.id):
            # The folder's index is in memory (the folder is open somewhere): counting its
            # entries costs far less than a count over its rows (reading one message of a
            # 100,000-message INBOX changes its HIGHESTMODSEQ, hence the count).
            entries = await self.store.index_entries(folder.id)
            count = sum(1 for _m, flags, _i in entries.values() if "\\Seen" not in flags)
        else:
            count = (await self.store.counts(folder.id)).unseen
        if len(self._unread) >= MAX_HELD_COUNTS:
            self._unread.clear()  # bounded: the counts are taken again as pages ask
        self._unread[folder.id] = (mark, count)
        return count

    async def own_mailboxes(self, user: Account, *, counts: bool = True) -> list[Mailbox]:
        """The account's folders, INBOX first then by name (``counts``: with unread)."""
        folders = await self.store.list_folders(user.id)
        folders.sort(key=lambda f: (f.name != "INBOX", f.name.casefold()))
        return [Mailbox(f, ALL_RIGHTS, user.id, user.address, False,
                        await self.unread(f) if counts else 0) for f in folders]

    async def shared_mailboxes(self, user: Account, *, counts: bool = True) -> list[Mailbox]:
        """Folders of other accounts reached with at least the ``l`` or ``r`` right."""
        out = []
        for s in await self.store.shared_folders(user.id, user.address,
                                                 access_version=self.access_version):
            rights = effective_rights(s)
            if "l" in rights or "r" in rights:
                unread = await self.unread(s.info) if counts and "r" in rights else 0
                out.append(Mailbox(s.info, rights, s.owner_id, s.owner, True, unread))
        out.sort(key=lambda m: (m.owner, m.folder.name != "INBOX", m.folder.name.casefold()))
        return out

    async def mailboxes(self, user: Account, *, counts: bool = True,
                        ) -> tuple[list[Mailbox], list[Mailbox]]:
        """Own and shared mailboxes, the sidebar's lists (``counts``: with unread)."""
        return (await self.own_mailboxes(user, counts=counts),
                await self.shared_mailboxes(user, counts=counts))

    async def mailbox(self, user: Account, folder_id: int, rights: str = "r") -> Mailbox:
        """The folder ``folder_id`` if the account holds ``rights`` on it, else
        :class:`NotFound` (the same answer as a folder that does not exist). Rights are
        read again on every request: a withdrawn delegation closes the next page."""
        return (await self.locate(user, folder_id, rights))[0]

    async def locate(self, user: Account, folder_id: int, rights: str = "r",
                     ) -> tuple[Mailbox, list[Mailbox], list[Mailbox]]:
        """:meth:`mailbox`, with the own and shared mailboxes it was found among (without
        unread counts: :meth:`with_unread` adds them), so that a page reads them once."""
        own, shared = await self.mailboxes(user, counts=False)
        return self._pick(own, shared, folder_id, rights), own, shared

    async def fresh(self, box: Mailbox) -> Mailbox:
        """``box`` with its folder row as it is now (HIGHESTMODSEQ, UIDNEXT), from the
        folder's index; NotFound if the folder is gone."""
        try:
            info, _entries = await self.store.snapshot(box.id)
        except LookupError:
            raise NotFound from None
        return replace(box, folder=info)

    @staticmethod
    def replaced(own: list[Mailbox], shared: list[Mailbox], box: Mailbox,
                 ) -> tuple[list[Mailbox], list[Mailbox]]:
        """``own`` and ``shared`` with ``box`` in place of the mailbox of the same id."""
        return ([box if b.id == box.id else b for b in own],
                [box if b.id == box.id else b for b in shared])

    async def with_unread(self, boxes: list[Mailbox]) -> list[Mailbox]:
        """``boxes`` with their unread counts (of shared ones, where they may be read)."""
        return [replace(b, unread=await self.unread(b.folder))
                if not b.shared or "r" in b.rights else b for b in boxes]

    @staticmethod
    def _pick(own: list[Mailbox], shared: list[Mailbox], folder_id: int,
              rights: str) -> Mailbox:
        for box in (*own, *shared):
            if box.id == folder_id:
                if not box.may(rights):
                    if box.may("r"):
                        raise Forbidden("Vous n'avez pas le droit de faire cela dans ce "
                                        f"dossier (droits accordés : {box.rights_text}).")
                    raise NotFound
                return box
        raise NotFound

    def render(self, request: Request, session: Session, user: Account, template: str, *,
               own: list[Mailbox], shared: list[Mailbox], current: Mailbox | None = None,
               status: int = 200, **context: Any) -> Response:
        """A page of ``webmail/layout.html``: the sidebar needs ``own``, ``shared`` and the
        mailbox shown (``current``, whose rights decide which buttons appear)."""
        return self._render(request, session, template, status=status, user=user,
                            own=own, shared=shared, current=current, url=self.url,
                            **context)
