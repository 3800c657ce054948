"""Accounts changed by ``mssante`` in another process reach the running gateway's directory
within seconds, and the periodic reconciliation logs only what changed.

Before: the gateway published accounts at start and every 60 s, so a mailbox created with
``mssante accounts add`` could neither be found nor bind over LDAP for up to a minute, and
each periodic pass logged ``directory_published`` for every account.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from accounts.publishing import sync_directory
from directory_ldap.layout import local_dn
from tests.fixtures.gateway import RunningGateway, ServeProcess

pytestmark = pytest.mark.timeout(150)
NEW = "nouveau.praticien@mssante.test"
WITHIN = 8.0  # seconds; the change notification is read about once a second


def _mssante(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(proc.command()[0])), *args], env=proc._env(), capture_output=True,
        text=True, timeout=60, check=False,
    )


def _search_as(proc: ServeProcess, address: str, password: str, flt: str) -> tuple[int, str]:
    """ldapsearch over LDAPS bound as ``address`` (its application password)."""
    base = proc.settings().directory.base_dn
    env = {**os.environ, "LDAPTLS_CACERT": str(proc.ca_file), "LDAPTLS_REQCERT": "demand"}
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "nettimeout=5", "-H",
         f"ldaps://127.0.0.1:{proc.ports['MSSANTE_DIRECTORY_LDAPS_PORT']}", "-x",
         "-D", local_dn(base, address, "PER"), "-w", password, "-b", base, flt, "mail"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _wait_for(check, within: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < within:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"not seen within {within} s")


def _log(proc: ServeProcess) -> str:
    return (proc.data_dir / f"serve-{proc.starts}.out").read_text(errors="replace")


async def test_new_account_binds_and_is_found_within_seconds(serve_process: ServeProcess) -> None:
    proc = serve_process
    await asyncio.to_thread(proc.start)
    done = await asyncio.to_thread(
        _mssante, proc, "accounts", "add", NEW, "--name", "Étienne Nouveau",
        "--idnat", "810001234567")
    assert done.returncode == 0, done.stdout + done.stderr
    password = done.stdout.rsplit(":", 1)[1].strip()

    def bound_and_found() -> bool:
        rc, out = _search_as(proc, NEW, password, f"(mail={NEW})")
        return rc == 0 and f"mail: {NEW}" in out

    await asyncio.to_thread(_wait_for, bound_and_found, WITHIN)
    # The demo user finds the newcomer too.
    rc, out = await asyncio.to_thread(
        _search_as, proc, proc.demo_address, proc.demo_password, f"(mail={NEW})")
    assert rc == 0 and f"mail: {NEW}" in out, out

    # Suspending removes it as quickly.
    done = await asyncio.to_thread(_mssante, proc, "accounts", "status", NEW, "suspended")
    assert done.returncode == 0, done.stdout + done.stderr

    def gone() -> bool:
        rc, out = _search_as(proc, proc.demo_address, proc.demo_password, f"(mail={NEW})")
        return rc == 0 and f"mail: {NEW}" not in out

    await asyncio.to_thread(_wait_for, gone, WITHIN)

    # Only what changed is logged: one publication of the newcomer, none of the others
    # after the start-up reconciliation.
    log = _log(proc)
    published = [line for line in log.splitlines() if "directory_published" in line]
    assert sum(NEW in line for line in published) == 1, published
    assert sum(proc.demo_address in line for line in published) == 1, published


async def test_reconciliation_of_unchanged_accounts_writes_and_logs_nothing(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: every periodic pass logged directory_published for every account."""
    directory = gateway.gw.directory
    db = gateway.gw.db
    assert directory is not None and db is not None
    address, _ = await gateway.add_mailbox("reconcilie", name="Dr Hélène Réconcilie")
    first = await sync_directory(db, directory)  # may publish the newcomer, if not yet done
    assert first.failed == 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mssante"):
        again = await sync_directory(db, directory)
    assert (again.published, again.removed, again.failed) == (0, 0, 0)
    assert again.checked >= 2
    assert not [r for r in caplog.records if "directory_published" in r.getMessage()]
    found = await directory.lookup(address)
    assert found is not None and found.common_name == "Dr Hélène Réconcilie"
