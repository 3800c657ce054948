"""QUOTA (RFC 9208) and ACL (RFC 4314) for the owner's own mailboxes.

The owner holds every right on their mailboxes; SETACL/DELETEACL record rights granted to
other identifiers in ``folder_acl`` (shared organisational mailboxes under ``Shared/`` will
read them). Storage usage is the sum of the live messages of all the account's folders.
"""

from __future__ import annotations

from imap.commands import AUTHENTICATED, register
from imap.commands.mailboxes import require_folder
from imap.protocol import Atom, ImapRefusal, encode_mailbox, untagged_data
from imap.protocol import commands as c
from imap.session import Done, Session

ALL_RIGHTS = "lrswipkxtecda"  # RFC 4314 §2.1 (with the RFC 2086 c/d kept for old clients)
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


def _is_owner(session: Session, identifier: str) -> bool:
    assert session.identity is not None
    return identifier.lower() in (session.identity.address, "owner")


@register(c.MyRights, AUTHENTICATED)
async def myrights(session: Session, cmd: c.MyRights) -> Done | None:
    folder = await require_folder(session, cmd.mailbox)
    session.write(untagged_data("MYRIGHTS", _mailbox(session, folder.name), ALL_RIGHTS.encode()))
    return None


@register(c.GetAcl, AUTHENTICATED)
async def getacl(session: Session, cmd: c.GetAcl) -> Done | None:
    assert session.identity is not None
    folder = await require_folder(session, cmd.mailbox)
    pairs: list[object] = [session.identity.address.encode(), ALL_RIGHTS.encode()]
    for ident, rights in await session.ctx.store.acl(folder.id):
        pairs += [ident.encode(), rights.encode()]
    session.write(untagged_data("ACL", _mailbox(session, folder.name), *pairs))  # type: ignore[arg-type]
    return None


@register(c.ListRights, AUTHENTICATED)
async def listrights(session: Session, cmd: c.ListRights) -> Done | None:
    folder = await require_folder(session, cmd.mailbox)
    if _is_owner(session, cmd.identifier):
        # RFC 4314 §3.4: the owner always holds every right.
        session.write(untagged_data("LISTRIGHTS", _mailbox(session, folder.name),
                                    cmd.identifier.encode(), ALL_RIGHTS.encode()))
    else:
        session.write(untagged_data("LISTRIGHTS", _mailbox(session, folder.name),
                                    cmd.identifier.encode(), b"",
                                    *[Atom(r) for r in ALL_RIGHTS]))
    return None


@register(c.SetAcl, AUTHENTICATED)
async def setacl(session: Session, cmd: c.SetAcl) -> Done | None:
    folder = await require_folder(session, cmd.mailbox)
    if _is_owner(session, cmd.identifier):
        raise ImapRefusal("NO", "CANNOT", "The owner's rights cannot be changed")
    mode = cmd.rights[:1] if cmd.rights[:1] in ("+", "-") else ""
    letters = cmd.rights[1:] if mode else cmd.rights
    bad = sorted(set(letters) - _VALID)
    if bad:
        # RFC 4314 §3.1: unknown rights are a BAD command.
        raise ImapRefusal("BAD", None, f"Unknown rights {''.join(bad)!r}; valid rights are "
                          f"{ALL_RIGHTS}")
    current = dict(await session.ctx.store.acl(folder.id)).get(cmd.identifier, "")
    if mode == "+":
        new = set(current) | set(letters)
    elif mode == "-":
        new = set(current) - set(letters)
    else:
        new = set(letters)
    text = "".join(r for r in ALL_RIGHTS if r in new)
    await session.ctx.store.set_acl(folder.id, cmd.identifier, text or None)
    return None


@register(c.DeleteAcl, AUTHENTICATED)
async def deleteacl(session: Session, cmd: c.DeleteAcl) -> Done | None:
    folder = await require_folder(session, cmd.mailbox)
    if _is_owner(session, cmd.identifier):
        raise ImapRefusal("NO", "CANNOT", "The owner's rights cannot be removed")
    await session.ctx.store.set_acl(folder.id, cmd.identifier, None)
    return None
