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

from directory_ldap import Directory, DirectoryEntry, DirectoryError
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from storage.schema import credentials

log = logging.getLogger("mssante.accounts")


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
        password_hashes=password_hashes,
    )


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
