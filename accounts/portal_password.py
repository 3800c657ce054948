"""The portal password of an existing mailbox (for mailboxes created by an operator, such as
the first administrator, which did not come through sign-up).

The portal asks for it, then for a code sent to the usual e-mail address, so both are set
together. The same policy as at sign-up applies (:func:`password_problem`). The revoked
and the new password are proved (``credential-revoked`` / ``credential-added``, reason
``set``), and a changed usual address too (``account-changed``, without the addresses:
they are personal data), naming ``actor`` (None: the operator at the command line).
"""

from __future__ import annotations

from accounts import audit
from accounts.errors import AccountRefused
from accounts.password_policy import password_problem
from accounts.passwords import hash_secret
from accounts.registrations import USUAL_EMAIL
from accounts.signup import email_problem
from storage import accounts as account_rows
from storage import credentials
from storage.database import Database


async def set_portal_password(db: Database, address: str, password: str,
                              usual_email: str, *, actor: str | None = None) -> None:
    """Replaces the portal password of ``address`` and records its usual e-mail address."""
    usual_email = usual_email.strip().lower()
    if problem := email_problem(usual_email):
        raise AccountRefused(problem)
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, address)
    if account is None:
        raise AccountRefused(f"L'adresse {address!r} n'a pas de boîte ici.")
    if problem := password_problem(password, given_name=account.given_name,
                                   surname=account.surname, email=usual_email):
        raise AccountRefused(problem)
    secret_hash = await hash_secret(password)
    async with db.begin() as conn:
        for old in await credentials.list_for_account(conn, account.id, kind="password"):
            if await credentials.revoke(conn, old.id):
                await audit.record(conn, "credential-revoked", account.address, actor,
                                   credential_id=old.id, kind=old.kind, label=old.label,
                                   reason="set")
        new = await credentials.add(conn, account.id, "password", label="portail",
                                    secret_hash=secret_hash)
        await audit.record(conn, "credential-added", account.address, actor,
                           credential_id=new.id, kind=new.kind, label=new.label, reason="set")
        before = str(account.settings.get(USUAL_EMAIL, ""))
        await account_rows.update_fields(
            conn, account.id, settings={**account.settings, USUAL_EMAIL: usual_email})
        if before != usual_email:
            await audit.record(conn, "account-changed", account.address, actor,
                               setting=USUAL_EMAIL)
