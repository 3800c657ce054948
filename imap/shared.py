"""The ``Shared/`` namespace (RFC 2342) and the rights of RFC 4314 on every mailbox.

A member of an organisational mailbox, or a delegate, sees each folder of the owner as
``Shared/<owner address>/<folder>``. The folder is the owner's own row (same folder id), so
flags, \\Seen included, are shared by everyone who reaches the mailbox, and the change
notifications of the owner's and the delegates' sessions are the same ones.

Effective rights of an account on another account's folder (RFC 4314 §2): the folder's
ACL row naming the account if there is one (an empty row takes every right away), else
the rights of the account-wide delegation. The owner holds every right on its folders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from accounts.delegations import ALL_RIGHTS
from imap.protocol import ImapRefusal, tagged
from imap.protocol import commands as c
from mailstore.store import DELIMITER, FolderInfo, SharedFolder
from storage.accounts import get_by_address

if TYPE_CHECKING:
    from imap.session import Session

PREFIX = "Shared"
PREFIX_SLASH = PREFIX + DELIMITER

# RFC 4314 §4: what each command needs, for the refusal texts.
RIGHT_NAMES = {
    "l": "see (l)", "r": "read (r)", "s": "change \\Seen (s)", "w": "change flags (w)",
    "i": "add messages (i)", "t": "delete messages (t)", "e": "expunge (e)",
    "a": "administer (a)", "k": "create mailboxes (k)", "x": "delete the mailbox (x)",
}


@dataclass(frozen=True, slots=True)
class Access:
    """A mailbox as one session reaches it: the folder (named as the client sees it),
    its owner and the session's rights on it."""

    folder: FolderInfo
    rights: str
    owner_id: int
    owner: str
    shared: bool

    @property
    def stored_name(self) -> str:
        """The folder's name in its owner's mailbox."""
        if not self.shared:
            return self.folder.name
        return self.folder.name[len(PREFIX_SLASH) + len(self.owner) + 1:]

    def require(self, rights: str, action: str) -> None:
        """Refuses with ``NO [NOPERM]`` unless every right in ``rights`` is held."""
        missing = [r for r in rights if r not in self.rights]
        if missing:
            names = ", ".join(RIGHT_NAMES.get(r, r) for r in missing)
            raise ImapRefusal("NO", "NOPERM", f"You may not {action} in {self.folder.name!r}: "
                              f"the right to {names} is not granted to you")


def effective_rights(shared: SharedFolder) -> str:
    """RFC 4314: the folder row overrides the account-wide delegation."""
    letters = shared.acl_rights if shared.acl_rights is not None else (
        shared.delegated_rights or "")
    return "".join(r for r in ALL_RIGHTS if r in letters)


async def acl_identifier(session: Session, identifier: str) -> str:
    """The identifier SETACL may store: the address of an existing local mailbox.

    The rights checks only ever look up a session's own address (RFC 4314 §2 lets a server
    choose its identifiers), so ``anyone``, ``authenticated``, group names, negative
    rights (``-address``) and addresses of no local mailbox would be stored and shown by
    GETACL without ever being honoured, which misleads whoever manages the mailbox.
    RFC 4314 §3.1 lets the server refuse them, so it does, with ``NO [CANNOT]``.
    """
    shown = identifier[:80]
    if identifier.startswith("-"):
        raise ImapRefusal("NO", "CANNOT", f"Identifier {shown!r} is refused: negative rights "
                          "are not supported; grant or remove rights of a local mailbox")
    if "@" not in identifier:
        raise ImapRefusal("NO", "CANNOT", f"Identifier {shown!r} is refused: only the address "
                          "of a mailbox of this operator can be given rights")
    address = identifier.strip().lower()
    db = session.ctx.db
    account = None
    if db is not None:
        async with db.read() as conn:
            account = await get_by_address(conn, address)
    if account is None:
        raise ImapRefusal("NO", "CANNOT", f"Identifier {shown!r} is refused: no mailbox of "
                          "this operator has that address")
    return account.address


def shared_name(owner: str, name: str) -> str:
    return f"{PREFIX_SLASH}{owner}{DELIMITER}{name}"


def is_shared_name(name: str) -> bool:
    return name == PREFIX or name.startswith(PREFIX_SLASH)


async def shared_access(session: Session) -> list[Access]:
    """Every folder of other accounts this session can reach with at least one right."""
    identity = session.identity
    assert identity is not None
    out = []
    for s in await session.ctx.store.shared_folders(identity.account_id, identity.address):
        rights = effective_rights(s)
        if rights:
            out.append(Access(replace(s.info, name=shared_name(s.owner, s.info.name)),
                              rights, s.owner_id, s.owner, True))
    return out


async def resolve(session: Session, name: str) -> Access | None:
    """The mailbox a (checked) name means for this session, own or shared; None if none.

    A shared folder whose ``l`` and ``r`` rights are both missing is reported as absent,
    so that its existence is not disclosed (RFC 4314 §4, "l" and "r").
    """
    identity = session.identity
    assert identity is not None
    if not name.startswith(PREFIX_SLASH):
        folder = await session.ctx.store.get_folder(identity.account_id, name)
        if folder is None:
            return None
        return Access(folder, ALL_RIGHTS, identity.account_id, identity.address, False)
    owner, _, rest = name[len(PREFIX_SLASH):].partition(DELIMITER)
    if rest.upper() == "INBOX" or rest[:6].upper() == "INBOX/":
        rest = "INBOX" + rest[5:]
    wanted = shared_name(owner.lower(), rest)
    for access in await shared_access(session):
        if access.folder.name == wanted:
            if "l" not in access.rights and "r" not in access.rights:
                return None
            return access
    return None


# -- access withdrawn while a session is open (issue: revocation ends open access) ---------

async def recheck(session: Session) -> ImapRefusal | None:
    """Takes the session's access decisions again after the access version moved.

    The login itself: a suspended or closed account, or a revoked application password,
    ends the session (``BYE``). The selected mailbox, when it is another account's: rights
    are read again; without ``r`` (or without the folder at all) the mailbox is closed and
    remembered as withdrawn, so that the client's next command on it is answered
    ``NO [NOPERM]`` instead of serving a single message more (RFC 4314 §4).
    """
    identity = session.identity
    assert identity is not None
    auth = session.ctx.authenticator
    session.access_version = auth.access.version
    reason = await auth.still_valid(identity)
    if reason is not None:
        what = ("the application password used by this session was revoked"
                if reason == "revoked" else f"account {identity.address} is {reason}")
        return ImapRefusal("BYE", None, f"Closing the session: {what}")
    sel = session.selected
    if sel is not None and sel.name.startswith(PREFIX_SLASH):
        access = await resolve(session, sel.name)
        if access is None or "r" not in access.rights or access.folder.id != sel.folder_id:
            session.close_selected()
            session.withdrawn = sel.name
        else:
            session.rights = access.rights
    return None


def _withdrawn(name: str) -> ImapRefusal:
    return ImapRefusal("NO", "NOPERM", f"Your access to {name[:200]!r} was withdrawn by its "
                       "owner or the operator: select another mailbox")


async def access_gate(session: Session, cmd: c.Command, state: str) -> bool:
    """Runs before every command of a logged-in session; True when it answered the command.

    Re-checks access when the access version moved since the session last looked
    (:mod:`accounts.access`), then answers the commands that need the withdrawn mailbox.
    """
    if session.access_version != session.ctx.authenticator.access.version:
        refusal = await recheck(session)
        if refusal is not None:
            session.write(refusal.response(cmd.tag))
            session.logout = True
            return True
    name = session.withdrawn
    if name is None:
        return False
    if isinstance(cmd, c.Select):
        session.withdrawn = None  # SELECT/EXAMINE of any mailbox leaves the withdrawn one
        return False
    if state != "selected":
        return False
    if isinstance(cmd, c.Close | c.Unselect):
        session.withdrawn = None  # nothing to expunge: the mailbox is no longer ours to touch
        session.write(tagged(cmd.tag, "OK", f"{cmd.name} Completed"))
        return True
    session.write(_withdrawn(name).response(cmd.tag))
    return True


async def idle_recheck(session: Session) -> None:
    """IDLE woke on an access change: ``BYE`` (raised) or an untagged ``NO [NOPERM]`` when the
    selected mailbox was withdrawn, so that nothing more of it is pushed."""
    before = session.selected
    refusal = await recheck(session)
    if refusal is not None:
        raise refusal
    if before is not None and session.selected is None and session.withdrawn is not None:
        session.write(_withdrawn(session.withdrawn).response(None))
