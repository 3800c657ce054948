"""An administrator's decisions on an existing mailbox: suspend, reactivate, close.

The portal's account list and ``mssante accounts suspend|reactivate|close`` call these
functions, so both follow one set of rules:

- suspend: an active mailbox stops logging in and receiving (SMTP 5.2.1), open sessions end;
- reactivate: a suspended mailbox is active again;
- close: an active or suspended mailbox is closed for good. Nobody reads it again (IMAP,
  SMTP, LDAP and the portal refuse it; its delegates lose it; mail to it is refused as an
  unknown mailbox), its bodies go with the retention purge like every other body, and its
  proofs stay in the ledger. A closed address is never reopened: the ledger names it, and a
  new holder must not inherit its history.

Each change appends one account proof (``account-suspended``, ``-reactivated``,
``-closed``) naming the actor, in the transaction that makes it. Refusals are French
sentences naming the address and its status (people read them in the portal; the command
line prints them and exits 2).
"""

from __future__ import annotations

from accounts import audit
from accounts.errors import AccountRefused
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database

STATUS_WORDS = {"pending": "en attente", "active": "active", "suspended": "suspendue",
                "closed": "fermée"}
"""How the portal and the refusals name a status."""

ACTIONS = {
    # action: (statuses it applies to, resulting status)
    "suspend": (("active",), "suspended"),
    "reactivate": (("suspended",), "active"),
    "close": (("active", "suspended"), "closed"),
}

_REFUSALS = {
    "suspend": "seule une boîte active peut être suspendue",
    "reactivate": "seule une boîte suspendue peut être réactivée",
    "close": "seule une boîte active ou suspendue peut être fermée",
}


async def change(db: Database, address: str, action: str, *, actor: str | None) -> Account:
    """Carries out ``action`` ("suspend", "reactivate", "close") on ``address``.

    ``actor`` is the administrator's address (portal) or ``operator:<user>`` (None: the
    operator). Raises :class:`AccountRefused` before writing anything when the address has
    no mailbox or its status does not allow the action; an administrator may not suspend or
    close their own mailbox (they would lock themselves out of the portal).
    """
    if action not in ACTIONS:
        raise AccountRefused(f"Action {action!r} inconnue : suspend, reactivate ou close.")
    allowed, after = ACTIONS[action]
    wanted = address.strip().lower()
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, wanted)
        if account is None:
            raise AccountRefused(f"L'adresse {address.strip()!r} n'a pas de boîte ici.")
        if account.status not in allowed:
            raise AccountRefused(
                f"La boîte {account.address!r} est {STATUS_WORDS[account.status]} : "
                f"{_REFUSALS[action]}.")
        if actor is not None and actor == account.address and action != "reactivate":
            raise AccountRefused(
                f"La boîte {account.address!r} est la vôtre : un autre administrateur doit "
                "la suspendre ou la fermer.")
        await account_rows.set_status(conn, account.id, after)
        kind = audit.status_kind(account.status, after)
        assert kind is not None
        await audit.record(conn, kind, account.address, actor,
                           **{"from": account.status, "to": after})
        found = await account_rows.get_by_id(conn, account.id)
    assert found is not None
    return found


async def suspend(db: Database, address: str, *, actor: str | None = None) -> Account:
    return await change(db, address, "suspend", actor=actor)


async def reactivate(db: Database, address: str, *, actor: str | None = None) -> Account:
    return await change(db, address, "reactivate", actor=actor)


async def close(db: Database, address: str, *, actor: str | None = None) -> Account:
    return await change(db, address, "close", actor=actor)
