"""Delegations: who may use a mailbox that is not their own, with which rights.

The members of an organisational (ORG) mailbox and the delegates of a nominative one are
both recorded as delegations: the owner's account, the delegate's account, RFC 4314 rights
letters that apply to every folder of the owner (a ``folder_acl`` row may refine one
folder), and whether the delegate may send as the owner (read by SMTP submission).

Who may change them: the operator (command line), the owner, and delegates holding the
``a`` (administer) right — the mailbox's managers, RFC 4314 §2.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts import audit
from accounts.errors import AccountRefused
from storage import accounts as account_rows
from storage import delegations as rows
from storage.accounts import Account
from storage.database import Database
from storage.delegations import Delegation

# RFC 4314 §2.1, with the obsolete RFC 2086 "c" and "d" kept for old clients.
ALL_RIGHTS = "lrswipkxtecda"
READ_ONLY = "lrs"


class DelegationRefused(AccountRefused):
    """A delegation request that cannot be carried out; the text names the bad value."""


def parse_rights(text: str) -> str:
    """The rights letters in canonical order, or :class:`DelegationRefused` naming the
    unknown ones (RFC 4314 §2.1). Digits (RFC 4314 §2.1.1 implementation rights) are refused
    because no right of that kind exists here."""
    letters = text.strip()
    bad = sorted(set(letters) - set(ALL_RIGHTS))
    if not letters or bad:
        shown = "".join(bad) or text
        raise DelegationRefused(f"rights {text!r}: {shown!r} not understood; use RFC 4314 "
                                f"letters among {ALL_RIGHTS!r}, e.g. 'lrs' for read-only")
    return "".join(r for r in ALL_RIGHTS if r in letters)


@dataclass(frozen=True, slots=True)
class DelegationList:
    """What an address gives to others and what it has been given."""

    given: list[Delegation]
    received: list[Delegation]


async def _account(conn: object, address: str, role: str) -> Account:
    found = await account_rows.get_by_address(conn, address.strip().lower())  # type: ignore[arg-type]
    if found is None:
        raise DelegationRefused(f"{role} {address!r} has no mailbox here")
    return found


async def may_manage(db: Database, owner_id: int, account_id: int) -> bool:
    """True for the owner and for delegates holding ``a`` (RFC 4314 §2.1 administer)."""
    if owner_id == account_id:
        return True
    async with db.read() as conn:
        d = await rows.get(conn, owner_id, account_id)
    return d is not None and "a" in d.rights


async def grant(db: Database, owner: str, delegate: str, rights: str, *,
                can_send_as: bool = False, by: str | None = None,
                actor: str | None = None) -> Delegation:
    """Gives ``delegate`` ``rights`` on ``owner``'s mailbox (replacing earlier rights).

    ``by`` is the account asking (None: the operator or an administrator, who may manage
    every mailbox); it must manage the mailbox. A ``delegation-granted`` proof
    (``delegation-changed`` with the rights before, when the delegate already held some)
    names ``actor`` (default ``by``; None: the operator).
    """
    actor = actor or by
    letters = parse_rights(rights)
    async with db.begin() as conn:
        own = await _account(conn, owner, "owner")
        dele = await _account(conn, delegate, "delegate")
        if own.id == dele.id:
            raise DelegationRefused(f"delegate {delegate!r} is the owner: an owner always "
                                    "holds every right on its own mailbox")
        if dele.status != "active":
            raise DelegationRefused(f"delegate {delegate!r} is {dele.status}, not active")
        if by is not None:
            asker = await _account(conn, by, "manager")
            if asker.id != own.id:
                held = await rows.get(conn, own.id, asker.id)
                if held is None or "a" not in held.rights:
                    raise DelegationRefused(f"{by!r} may not manage {owner!r}: only the owner "
                                            "and delegates holding the 'a' right may")
        before = await rows.get(conn, own.id, dele.id)
        await rows.grant(conn, own.id, dele.id, letters, can_send_as)
        result = await rows.get(conn, own.id, dele.id)
        assert result is not None
        change: dict[str, object] = {"delegate": dele.address, "rights": result.rights,
                                     "send_as": result.can_send_as}
        if before is None:
            await audit.record(conn, "delegation-granted", own.address, actor, **change)
        elif (before.rights, before.can_send_as) != (result.rights, result.can_send_as):
            await audit.record(conn, "delegation-changed", own.address, actor, **change,
                               before={"rights": before.rights,
                                       "send_as": before.can_send_as})
    return result


async def revoke(db: Database, owner: str, delegate: str, *, by: str | None = None,
                 actor: str | None = None) -> None:
    """Takes every right of ``delegate`` on ``owner``'s mailbox away (folder rows too);
    the proof names ``actor`` (default ``by``)."""
    actor = actor or by
    async with db.begin() as conn:
        own = await _account(conn, owner, "owner")
        dele = await _account(conn, delegate, "delegate")
        if by is not None:
            asker = await _account(conn, by, "manager")
            held = None if asker.id == own.id else await rows.get(conn, own.id, asker.id)
            if asker.id != own.id and (held is None or "a" not in held.rights):
                raise DelegationRefused(f"{by!r} may not manage {owner!r}: only the owner "
                                        "and delegates holding the 'a' right may")
        if not await rows.revoke(conn, own.id, dele.id, dele.address):
            raise DelegationRefused(f"{delegate!r} holds no delegation on {owner!r}")
        await audit.record(conn, "delegation-revoked", own.address, actor,
                           delegate=dele.address)


async def list_for(db: Database, address: str) -> DelegationList:
    """Delegations given by and to ``address``."""
    async with db.read() as conn:
        acc = await _account(conn, address, "address")
        return DelegationList(await rows.of_owner(conn, acc.id),
                              await rows.of_delegate(conn, acc.id))
