"""The authentication cache (``[auth] cache_ttl``), as Dovecot's auth_cache.

A verified application password is answered from memory for a while, but never after
access changed: a revocation made by another process (``mssante`` on the same data
directory, as a second worker would) fails the very next login, and a changed password is
not accepted from the cache. Wrong passwords are remembered briefly and still counted by
the guessing limits. Real SQLite database, real ``mssante`` subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from accounts.authenticator import Authenticator
from accounts.mailboxes import add_mailbox
from accounts.portal_password import set_portal_password
from config import load_settings
from storage.database import Database, open_database

pytestmark = pytest.mark.timeout(120)

ADDRESS = "camille@mssante.test"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    settings = load_settings(data_dir=tmp_path / "data", env={})
    database = await open_database(settings, may_create_key=True)
    try:
        yield database
    finally:
        await database.close()


def mssante(db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(db.settings.data_dir)
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_a_login_right_after_a_revocation_elsewhere_fails(db: Database) -> None:
    created = await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille",
                                idnat="810000000042")
    auth = Authenticator(db)
    try:
        first = await auth.check_password(ADDRESS, created.app_password, "PLAIN")
        assert first is not None and first.credential_id is not None
        t0 = time.monotonic()
        again = await auth.check_password(ADDRESS, created.app_password, "PLAIN")
        cached_s = time.monotonic() - t0
        assert again is not None and again.account_id == first.account_id
        # Another process revokes; this process is told nothing.
        done = await asyncio.to_thread(mssante, db, "accounts", "app-password", "revoke",
                                       ADDRESS, str(first.credential_id))
        assert done.returncode == 0, done.stderr
        assert await auth.check_password(ADDRESS, created.app_password, "PLAIN") is None
        print(f"RESULT auth_cache_hit_ms={cached_s * 1000:.2f}")
    finally:
        await auth.close()


async def test_suspension_empties_the_cache_at_once(db: Database) -> None:
    created = await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille",
                                idnat="810000000042")
    auth = Authenticator(db)
    try:
        assert await auth.check_password(ADDRESS, created.app_password, "PLAIN") is not None
        done = await asyncio.to_thread(mssante, db, "accounts", "status", ADDRESS, "suspended")
        assert done.returncode == 0, done.stderr
        assert await auth.check_password(ADDRESS, created.app_password, "PLAIN") is None
    finally:
        await auth.close()


async def test_a_changed_password_is_not_accepted_from_the_cache(db: Database) -> None:
    await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille", idnat="810000000042")
    old, new = "Vieux-Mot-de-passe-2024!", "Nouveau-Mot-de-passe-2025!"
    await set_portal_password(db, ADDRESS, old, "camille@example.org")
    auth = Authenticator(db)
    try:
        assert await auth.check_password(ADDRESS, old, "portal", kind="password") is not None
        assert await auth.check_password(ADDRESS, old, "portal", kind="password") is not None
        await set_portal_password(db, ADDRESS, new, "camille@example.org")
        assert await auth.check_password(ADDRESS, old, "portal", kind="password") is None
        assert await auth.check_password(ADDRESS, new, "portal", kind="password") is not None
    finally:
        await auth.close()


async def test_wrong_passwords_are_remembered_briefly_and_still_counted(db: Database) -> None:
    created = await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille",
                                idnat="810000000042")
    auth = Authenticator(db)
    try:
        for _ in range(3):
            assert await auth.check_password(ADDRESS, "wrong-guess", "PLAIN",
                                             client="192.0.2.7") is None
        # Three failures counted for the name and the address although argon2 ran once:
        # one budget token spent, not three.
        budget = auth.limiter._budgets["192.0.2.7"]
        spent = auth.limiter.settings.address_hash_budget - budget.tokens
        assert spent < 1.5
        assert auth.limiter._names[ADDRESS].count == 3
        assert auth.limiter._addresses["192.0.2.7"].count == 3
        # The right password is another key: not refused by what was remembered.
        assert await auth.check_password(ADDRESS, created.app_password, "PLAIN",
                                         client="192.0.2.7") is not None
    finally:
        await auth.close()


async def test_cache_keys_are_a_per_process_hmac_never_the_password(db: Database) -> None:
    created = await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille",
                                idnat="810000000042")
    one, two = Authenticator(db), Authenticator(db)
    try:
        assert await one.check_password(ADDRESS, created.app_password, "PLAIN") is not None
        assert await two.check_password(ADDRESS, created.app_password, "PLAIN") is not None
        (key_one,), (key_two,) = one._cache.keys(), two._cache.keys()
        assert key_one != key_two
        plain = hashlib.sha256(
            f"app_password\0{ADDRESS}\0{created.app_password}".encode()).digest()
        assert plain not in (key_one, key_two)
        assert created.app_password.encode() not in key_one
    finally:
        await one.close()
        await two.close()


async def test_simultaneous_logins_share_one_verification(db: Database) -> None:
    """Ten connections opened at once with the same credentials (a client's burst): one
    argon2 run answers them all."""
    created = await add_mailbox(db, ADDRESS, type="PER", name="Dr Camille",
                                idnat="810000000042")
    auth = Authenticator(db)
    try:
        answers = await asyncio.gather(*(
            auth.check_password(ADDRESS, created.app_password, "PLAIN", client="192.0.2.9")
            for _ in range(10)))
        assert all(a is not None and a.address == ADDRESS for a in answers)
        budget = auth.limiter._budgets["192.0.2.9"]
        assert auth.limiter.settings.address_hash_budget - budget.tokens < 1.5
    finally:
        await auth.close()
