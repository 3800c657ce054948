"""QUOTA (RFC 9208) and ACL (RFC 4314) on one's own mailboxes and on shared ones.

The owner holds every right on its mailboxes. A delegate holds the rights of its
delegation, or those of the folder's ACL row naming it (see ``imap/shared.py``). GETACL,
LISTRIGHTS, SETACL and DELETEACL need the ``a`` right (RFC 4314 §3.1-3.4); MYRIGHTS is
answered to anyone who can see the mailbox. SETACL writes ``folder_acl`` rows, which the
rights checks of every command read. Storage usage is the sum of the live messages of all
the account's folders.
"""

from __future__ import annotations

from accounts.delegations import ALL_RIGHTS  # RFC 4314 §2.1 (RFC 2086 c/d kept)
from imap.commands import AUTHENTICATED, register
from imap.commands.mailboxes import require_access, require_folder
from imap.protocol import Atom, ImapRefusal, encode_mailbox, untagged_data
from imap.protocol import commands as c
from imap.session import Done, Session
from imap.shared import Access, acl_identifier
from mailstore.aclaudit import AclChange

_VALID = set(ALL_RIGHTS) | set("0123456789")


def _mailbox(session: Session, name: str) -> Atom:
    return Atom(encode_mailbox(name, utf8=session.utf8).decode("utf-8"))


async def _quota(session: Session) -> None:
    assert session.identity is not None
    used = await session.ctx.store.storage_used(session.identity.account_id)
    limit_kib = session.ctx.settings.imap.quota_storage_mb * 1024
    # RFC 9208 §5.1: STORAGE is counted in units of 1024 octets.
    session.write(untagged_data("QUOTA", b"", [Atom("STORAGE"), (used + 1023) // 1024,
                                                limit_kib]))


@register(c.GetQuotaRoot, AUTHENTICATED)
async def getquotaroot(session: Session, cmd: c.GetQuotaRoot) -> Done | None:
    folder = await require_folder(session, cmd.mailbox)
    session.write(untagged_data("QUOTAROOT", _mailbox(session, folder.name), b""))
    await _quota(session)
    return None


@register(c.GetQuota, AUTHENTICATED)
async def getquota(session: Session, cmd: c.GetQuota) -> Done | None:
    if cmd.root != "":
        raise ImapRefusal("NO", "NONEXISTENT", f"No quota root {cmd.root[:80]!r}; the only "
                          "root is \"\"")
    await _quota(session)
    return None


@register(c.SetQuota, AUTHENTICATED)
async def setquota(session: Session, cmd: c.SetQuota) -> Done | None:
    raise ImapRefusal("NO", "NOPERM", "Quotas are set by the operator, not over IMAP")


def _is_owner(access: Access, identifier: str) -> bool:
    return identifier.lower() in (access.owner, "owner")


async def _managed(session: Session, mailbox: str) -> Access:
    access = await require_access(session, mailbox)
    access.require("a", "read or change the access rights")  # RFC 4314 §3.1-3.4
    return access


async def _effective(session: Session, access: Access) -> list[tuple[str, str]]:
    """Every identifier with rights on the folder, as the rights checks see them."""
    rows = dict(await session.ctx.store.acl(access.folder.id))
    out: list[tuple[str, str]] = [(access.owner, ALL_RIGHTS)]
    for delegate, rights in await session.ctx.store.delegates(access.owner_id):
        out.append((delegate, rows.pop(delegate, rights)))
    out += sorted(rows.items())
    return [(ident, rights) for ident, rights in out if rights]


@register(c.MyRights, AUTHENTICATED)
async def myrights(session: Session, cmd: c.MyRights) -> Done | None:
    access = await require_access(session, cmd.mailbox)  # RFC 4314 §3.5
    session.write(untagged_data("MYRIGHTS", _mailbox(session, access.folder.name),
                                Atom(access.rights)))
    return None


@register(c.GetAcl, AUTHENTICATED)
async def getacl(session: Session, cmd: c.GetAcl) -> Done | None:
    access = await _managed(session, cmd.mailbox)
    pairs: list[object] = []
    for ident, rights in await _effective(session, access):
        pairs += [ident.encode(), Atom(rights)]
    session.write(untagged_data("ACL", _mailbox(session, access.folder.name), *pairs))  # type: ignore[arg-type]
    return None


@register(c.ListRights, AUTHENTICATED)
async def listrights(session: Session, cmd: c.ListRights) -> Done | None:
    access = await _managed(session, cmd.mailbox)
    name = _mailbox(session, access.folder.name)
    if _is_owner(access, cmd.identifier):
        # RFC 4314 §3.7: the owner always holds every right; none can be granted apart.
        session.write(untagged_data("LISTRIGHTS", name, cmd.identifier.encode(),
                                    Atom(ALL_RIGHTS)))
    else:
        # RFC 4314 §3.7: nothing is always granted; each right can be granted on its own.
        session.write(untagged_data("LISTRIGHTS", name, cmd.identifier.encode(), b"",
                                    *[Atom(r) for r in ALL_RIGHTS]))
    return None


def _change(session: Session, access: Access, before: str) -> AclChange | None:
    """What the proof of this rights change names: the account making it, the owner, the
    folder (as the owner names it) and the rights held before."""
    identity = session.identity
    if identity is None:
        return None
    return AclChange(identity.address, access.owner, access.stored_name, before)


@register(c.SetAcl, AUTHENTICATED)
async def setacl(session: Session, cmd: c.SetAcl) -> Done | None:
    access = await _managed(session, cmd.mailbox)
    if _is_owner(access, cmd.identifier):
        raise ImapRefusal("NO", "CANNOT", "The owner's rights cannot be changed")
    mode = cmd.rights[:1] if cmd.rights[:1] in ("+", "-") else ""
    letters = cmd.rights[1:] if mode else cmd.rights
    bad = sorted(set(letters) - _VALID)
    if bad:
        # RFC 4314 §3.1: unknown rights are a BAD command.
        raise ImapRefusal("BAD", None, f"Unknown rights {''.join(bad)!r}; valid rights are "
                          f"{ALL_RIGHTS}")
    identifier = await acl_identifier(session, cmd.identifier)
    current = dict(await _effective(session, access)).get(identifier, "")
    if mode == "+":
        new = set(current) | set(letters)
    elif mode == "-":
        new = set(current) - set(letters)
    else:
        new = set(letters)
    text = "".join(r for r in ALL_RIGHTS if r in new)
    delegates = {d for d, _ in await session.ctx.store.delegates(access.owner_id)}
    # An empty row is kept for a delegate: it overrides the account-wide delegation.
    await session.ctx.store.set_acl(access.folder.id, identifier,
                                    text if (text or identifier in delegates) else None,
                                    change=_change(session, access, current))
    return None


@register(c.DeleteAcl, AUTHENTICATED)
async def deleteacl(session: Session, cmd: c.DeleteAcl) -> Done | None:
    access = await _managed(session, cmd.mailbox)
    if _is_owner(access, cmd.identifier):
        raise ImapRefusal("NO", "CANNOT", "The owner's rights cannot be removed")
    identifier = cmd.identifier.lower() if "@" in cmd.identifier else cmd.identifier
    delegates = {d for d, _ in await session.ctx.store.delegates(access.owner_id)}
    current = dict(await _effective(session, access)).get(identifier, "")
    # RFC 4314 §3.2: the identifier is left with no rights on this mailbox.
    await session.ctx.store.set_acl(access.folder.id, identifier,
                                    "" if identifier in delegates else None,
                                    change=_change(session, access, current))
    return None
