"""Forgotten portal password: a one-time code to the usual address, then a new password.

Nothing tells a visitor whether an address has an account: the request always answers the
same, and an unknown, suspended or closed address, or one without a usual address, gets a
challenge no code was sent for (it fails like a wrong code). Requests are throttled alike
for every address and every client (:class:`ResetThrottle`). The code is the portal's
(:mod:`accounts.otp`: 6 digits, 10 minutes, single use, 5 tries). The new password goes
through :func:`accounts.password_policy.password_problem`; setting it revokes the old
portal password and proves both changes (``credential-revoked``, ``credential-added``,
reason ``reset``); the caller then ends every open session of the account.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from accounts import audit, otp
from accounts.errors import AccountRefused
from accounts.password_policy import password_problem
from accounts.passwords import hash_secret
from accounts.registrations import USUAL_EMAIL
from storage import accounts as account_rows
from storage import credentials
from storage.database import Database

RESEND_SECONDS = 60.0
"""At most one code per address per minute."""
PER_HOUR = 5
"""At most this many codes per address, and this many times 4 per client, per hour."""
MAX_KEYS = 100_000


class ResetThrottle:
    """Codes asked per login name and per client address over the last hour (in memory,
    bounded: the least recently asking keys go first)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._asked: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, login: str, client: str | None) -> bool:
        now = self._clock()
        keys = [(f"login:{login.strip().lower()}", PER_HOUR, True),
                (f"client:{client or '-'}", PER_HOUR * 4, False)]
        for key, most, spaced in keys:
            times = [t for t in self._asked.get(key, []) if now - t < 3600]
            if len(times) >= most or (spaced and times and now - times[-1] < RESEND_SECONDS):
                return False
        for key, _most, _spaced in keys:
            times = [t for t in self._asked.pop(key, []) if now - t < 3600]
            self._asked[key] = [*times, now]
        while len(self._asked) > MAX_KEYS:
            self._asked.popitem(last=False)
        return True


@dataclass(frozen=True)
class ResetStart:
    """The challenge to keep in the session; ``code`` and ``to`` are None when no code
    is sent (no such account): the caller answers the same either way."""

    challenge: otp.OtpChallenge
    code: str | None
    to: str | None


async def start(db: Database, login: str, now: datetime) -> ResetStart:
    """A challenge for ``login``'s account, with the code to send to its usual address."""
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, login.strip().lower()[:320])
    usual = str(account.settings.get(USUAL_EMAIL, "")) if account else ""
    if account is None or account.status != "active" or not usual:
        challenge, _code = otp.new_challenge(0, now)  # account 0 exists nowhere
        return ResetStart(challenge, None, None)
    challenge, code = otp.new_challenge(account.id, now)
    return ResetStart(challenge, code, usual)


async def set_new_password(db: Database, account_id: int, password: str,
                           confirmation: str) -> str:
    """Replaces the portal password of ``account_id`` (after a verified code); its address.

    Raises :class:`AccountRefused` with the policy's French sentence."""
    if password != confirmation:
        raise AccountRefused("Les deux mots de passe ne sont pas identiques.")
    async with db.read() as conn:
        account = await account_rows.get_by_id(conn, account_id)
    if account is None or account.status != "active":
        raise AccountRefused("Ce compte n'est plus actif : le mot de passe ne peut pas être "
                             "changé.")
    usual = str(account.settings.get(USUAL_EMAIL, ""))
    if problem := password_problem(password, given_name=account.given_name,
                                   surname=account.surname, email=usual):
        raise AccountRefused(problem)
    secret_hash = await hash_secret(password)
    async with db.begin() as conn:
        for old in await credentials.list_for_account(conn, account.id, kind="password"):
            if await credentials.revoke(conn, old.id):
                await audit.record(conn, "credential-revoked", account.address,
                                   f"portal:{account.address}", credential_id=old.id,
                                   kind=old.kind, label=old.label, reason="reset")
        new = await credentials.add(conn, account.id, "password", label="portail",
                                    secret_hash=secret_hash)
        await audit.record(conn, "credential-added", account.address,
                           f"portal:{account.address}", credential_id=new.id,
                           kind=new.kind, label=new.label, reason="reset")
    return account.address
