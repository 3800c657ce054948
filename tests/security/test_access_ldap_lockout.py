"""Issue 9 item 9, LDAP side: binds go to slapd itself (it verifies the {ARGON2} hashes the
gateway publishes), so the lock-out is slapd's ppolicy overlay, configured from [auth]:
after lock_after_failures wrong binds the entry is locked for lock_duration, the right
password too, with the same answer as a wrong password or an unknown entry. Real slapd,
python-ldap over LDAPS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import argon2
import ldap
import pytest

from config import Settings
from config.settings import AuthSettings
from directory_ldap import DirectoryEntry
from directory_ldap.layout import local_dn
from directory_ldap.service import Directory
from tests.fixtures.slapd import directory_settings

pytestmark = pytest.mark.timeout(120)

PASSWORD = "k7mq-x2dp-9rfa-hw3n-c8ve"
LOCK = 4.0


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    settings: Settings = replace(
        directory_settings(tmp_path / "ldap"),
        auth=AuthSettings(lock_after_failures=5, lock_duration=LOCK, failure_window=60.0),
    )
    d = Directory(settings, workers=1)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def _publish(d: Directory, local: str) -> str:
    h = await asyncio.to_thread(argon2.PasswordHasher().hash, PASSWORD)
    address = f"{local}@mssante.test"
    await d.publish(DirectoryEntry(address=address, type="PER", given_name=local.title(),
                                   surname="Test", password_hashes=(h,)))
    return local_dn(d.base_dn, address, "PER")


def _bind(d: Directory, dn: str, password: str) -> dict[str, Any] | None:
    """None when the bind succeeded, else the error's result, desc and info."""
    assert d.layout is not None
    conn = ldap.initialize(d.layout.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(d.settings.tls_anchor_files[0]))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    try:
        conn.simple_bind_s(dn, password)
    except ldap.LDAPError as exc:
        info = exc.args[0]
        return {k: info.get(k) for k in ("result", "desc", "info")}
    finally:
        conn.unbind_s()
    return None


async def test_ldap_binds_lock_the_entry_with_the_usual_answer(directory: Directory) -> None:
    alice = await _publish(directory, "alice")
    bob = await _publish(directory, "bob")

    def attack() -> tuple[list[dict[str, Any] | None], dict[str, Any] | None,
                          dict[str, Any] | None, dict[str, Any] | None, float]:
        wrong = [_bind(directory, alice, f"guess-{n}") for n in range(5)]
        locked_at = time.monotonic()
        right = _bind(directory, alice, PASSWORD)
        unknown = _bind(directory, local_dn(directory.base_dn, "ghost@mssante.test", "PER"),
                        PASSWORD)
        other = _bind(directory, bob, PASSWORD)
        return wrong, right, unknown, other, locked_at
    wrong, right, unknown, other, locked_at = await asyncio.to_thread(attack)
    assert all(w is not None and w["result"] == 49 for w in wrong), wrong
    assert right == wrong[0], "the right password must be refused while the entry is locked"
    assert unknown == wrong[0], "an unknown entry must get the same answer"
    assert other is None, "another entry is not locked"
    await asyncio.sleep(max(0.0, locked_at + LOCK + 1.0 - time.monotonic()))
    assert await asyncio.to_thread(_bind, directory, alice, PASSWORD) is None
