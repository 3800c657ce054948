"""Keeps the LDAP directory in step with the accounts: active mailboxes are published.

Accounts live in the database; the directory shows them to correspondents. Rather than
trusting every code path that changes an account to also call LDAP (and to survive slapd
being down at that moment), the gateway reconciles: every change of an account or of its
application passwords raises the directory version (:mod:`storage.directory_version`), and
the running gateway then re-publishes the accounts changed since its last pass (``since``),
within about a second, whichever process made the change; a full reconciliation at start and
periodically is the safety net. Publishing is idempotent and writes (and logs) only what
differs from the published entry, so a reconciliation that runs twice does no harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from accounts import audit
from accounts.errors import AccountRefused
from directory_ldap import Directory, DirectoryEntry, DirectoryError
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from storage.schema import accounts as account_table
from storage.schema import credentials

log = logging.getLogger("mssante.accounts")

LISTE_ROUGE = "liste_rouge"
"""Key in an account's settings: the holder asked not to be shown to directory users.

Kept with the account, not only in LDAP, because every publication rebuilds the entry from
the account: a flag set only in the directory would be lost at the next reconciliation."""


@dataclass(frozen=True)
class SyncReport:
    checked: int
    """Accounts compared with their entry."""
    published: int
    """Entries added or changed (unchanged ones are not written)."""
    removed: int
    failed: int

    @property
    def changed(self) -> bool:
        return bool(self.published or self.removed or self.failed)


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
    db: Database, directory: Directory, address: str, hidden: bool, *,
    actor: str | None = None,
) -> Account:
    """Marks (or unmarks) a local mailbox "liste rouge" and re-publishes it at once.

    slapd's access control then hides the entry from every directory user; only the
    gateway's service identity still finds it. Raises :class:`AccountRefused` naming the
    address when it is not a mailbox of this operator. A real change appends an
    ``account-changed`` proof (setting ``liste_rouge``) naming ``actor`` (None: the
    operator) in the same transaction.
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
        was_hidden = bool(account.settings.get(LISTE_ROUGE))
        await account_rows.update_fields(conn, account.id, settings=settings)
        await audit.record_change(conn, account.address, actor, LISTE_ROUGE, was_hidden,
                                  hidden)
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


async def _changed_since(db: Database, since: datetime) -> list[Account]:
    """Accounts whose row or whose application passwords changed at or after ``since``."""
    touched = select(credentials.c.account_id).where(
        credentials.c.kind == "app_password",
        or_(credentials.c.created_at >= since, credentials.c.revoked_at >= since),
    )
    async with db.read() as conn:
        ids = [r for (r,) in await conn.execute(
            select(account_table.c.id).where(
                or_(account_table.c.updated_at >= since, account_table.c.id.in_(touched))
            )
        )]
        found = [await account_rows.get_by_id(conn, i) for i in ids]
    return [a for a in found if a is not None]


async def sync_directory(
    db: Database, directory: Directory, since: datetime | None = None
) -> SyncReport:
    """Publishes every active account and removes suspended and closed ones; with ``since``,
    only the accounts changed from then on (the quick pass after a change)."""
    if since is None:
        async with db.read() as conn:
            accounts = await account_rows.list_accounts(conn, limit=10_000_000)
    else:
        accounts = await _changed_since(db, since)
    if not accounts:
        return SyncReport(0, 0, 0, 0)
    wanted = select(credentials.c.account_id, credentials.c.secret_hash).where(
        credentials.c.kind == "app_password", credentials.c.revoked_at.is_(None)
    )
    if since is not None and len(accounts) <= 500:
        wanted = wanted.where(credentials.c.account_id.in_([a.id for a in accounts]))
    async with db.read() as conn:
        rows = (await conn.execute(wanted)).all()
    hashes: dict[int, list[str]] = {}
    for account_id, secret_hash in rows:
        if secret_hash:
            hashes.setdefault(account_id, []).append(secret_hash)
    published = removed = failed = 0
    for account in accounts:
        try:
            if account.status == "active":
                entry = directory_entry(account, tuple(hashes.get(account.id, ())))
                if await directory.publish(entry):
                    published += 1
            elif account.status in ("suspended", "closed") and await directory.unpublish(
                account.address
            ):
                removed += 1
        except (DirectoryError, ValueError) as exc:
            failed += 1
            log.warning("directory_publish_failed", extra={"fields": {
                "address": account.address, "reason": str(exc)}})
    return SyncReport(len(accounts), published, removed, failed)
