"""Keeps the LDAP directory in step with the accounts: active mailboxes are published.

Accounts live in the database; the directory shows them to correspondents. Rather than
trusting every code path that changes an account to also call LDAP (and to survive slapd
being down at that moment), the gateway reconciles: at start, after its own changes, and
periodically for changes made by ``mssante accounts`` from another process. Publishing is
idempotent, so a reconciliation that runs twice does no harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from accounts.errors import AccountRefused
from directory_ldap import Directory, DirectoryEntry, DirectoryError
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from storage.schema import credentials

log = logging.getLogger("mssante.accounts")

LISTE_ROUGE = "liste_rouge"
"""Key in an account's settings: the holder asked not to be shown to directory users.

Kept with the account, not only in LDAP, because every publication rebuilds the entry from
the account: a flag set only in the directory would be lost at the next reconciliation."""


@dataclass(frozen=True)
class SyncReport:
    published: int
    removed: int
    failed: int


def directory_entry(account: Account, password_hashes: tuple[str, ...]) -> DirectoryEntry:
    """The directory view of an account (what correspondents may see, plus bind hashes)."""
    return DirectoryEntry(
        address=account.address,
        type=account.type,
        display_name=account.display_name,
        given_name=account.given_name,
        surname=account.surname,
        idnat=account.idnat or "",
        rpps=account.rpps or "",
        adeli=account.adeli or "",
        profession_code=account.profession_code or "",
        specialty_code=account.specialty_code or "",
        structure_id=account.structure_id or "",
        structure_name=account.structure_name or "",
        origin="local",
        liste_rouge=bool(account.settings.get(LISTE_ROUGE)),
        password_hashes=password_hashes,
    )


async def set_liste_rouge(
    db: Database, directory: Directory, address: str, hidden: bool
) -> Account:
    """Marks (or unmarks) a local mailbox "liste rouge" and re-publishes it at once.

    slapd's access control then hides the entry from every directory user; only the
    gateway's service identity still finds it. Raises :class:`AccountRefused` naming the
    address when it is not a mailbox of this operator.
    """
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, address)
        if account is None:
            raise AccountRefused(
                f"{address.strip()[:320]} is not a mailbox of this operator; only local "
                "mailboxes can be hidden or shown (see mssante accounts list)"
            )
        settings = {k: v for k, v in account.settings.items() if k != LISTE_ROUGE}
        if hidden:
            settings[LISTE_ROUGE] = True
        await account_rows.update_fields(conn, account.id, settings=settings)
        account = await account_rows.get_by_address(conn, address)
        assert account is not None
        rows = await conn.execute(
            select(credentials.c.secret_hash).where(
                credentials.c.account_id == account.id, credentials.c.kind == "app_password",
                credentials.c.revoked_at.is_(None),
            )
        )
        hashes = tuple(h for (h,) in rows if h)
    if account.status == "active":
        await directory.publish(directory_entry(account, hashes))
    log.info("directory_liste_rouge", extra={"fields": {
        "address": account.address, "hidden": hidden}})
    return account


async def sync_directory(db: Database, directory: Directory) -> SyncReport:
    """Publishes every active account and removes suspended and closed ones."""
    async with db.read() as conn:
        accounts = await account_rows.list_accounts(conn, limit=10_000_000)
        rows = (
            await conn.execute(
                select(credentials.c.account_id, credentials.c.secret_hash).where(
                    credentials.c.kind == "app_password", credentials.c.revoked_at.is_(None)
                )
            )
        ).all()
    hashes: dict[int, list[str]] = {}
    for account_id, secret_hash in rows:
        if secret_hash:
            hashes.setdefault(account_id, []).append(secret_hash)
    published = removed = failed = 0
    for account in accounts:
        try:
            if account.status == "active":
                entry = directory_entry(account, tuple(hashes.get(account.id, ())))
                await directory.publish(entry)
                published += 1
            elif account.status in ("suspended", "closed") and await directory.unpublish(
                account.address
            ):
                removed += 1
        except (DirectoryError, ValueError) as exc:
            failed += 1
            log.warning("directory_publish_failed", extra={"fields": {
                "address": account.address, "reason": str(exc)}})
    return SyncReport(published, removed, failed)
