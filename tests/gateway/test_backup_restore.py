"""``mssante backup`` under SMTP load, ``mssante restore`` on a new data directory.

Ten submission sessions send messages with unique Message-IDs while the backup runs. After a
restore (key file copied back separately), a gateway started on the new directory must hold
every message acknowledged before the backup started, every account, and a proof ledger
that ``mssante proofs verify`` accepts; the managed directory must be loaded from the LDIF
before the first start.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select

from storage.database import open_database
from storage.schema import accounts, messages
from tests.fixtures.gateway import ServeProcess

pytestmark = pytest.mark.timeout(240)

SESSIONS = 10


def mssante(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, *args], env=proc._env(), capture_output=True, text=True,
                          timeout=180)


class Load:
    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.stop = False


async def sender(proc: ServeProcess, load: Load) -> None:
    ctx = ssl.create_default_context(cafile=str(proc.ca_file))
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port, timeout=30,
                             start_tls=True, tls_context=ctx)
    await client.connect()
    try:
        await client.login(proc.demo_address, proc.demo_password)
        while not load.stop:
            token = uuid.uuid4().hex
            body = (
                f"From: <{proc.demo_address}>\r\nTo: <{proc.demo_address}>\r\n"
                f"Subject: backup {token}\r\nMessage-ID: <{token}@backup.test>\r\n\r\n"
                + "y" * 3000 + "\r\n"
            )
            await client.sendmail(proc.demo_address, [proc.demo_address], body)
            load.acked.add(token)
    finally:
        client.close()


async def _stored(proc: ServeProcess) -> tuple[set[str], set[str]]:
    """(Message-ID headers, account addresses) in the data directory of ``proc``."""
    db = await open_database(proc.settings(), may_create_key=False)
    try:
        async with db.read() as conn:
            ids = {r[0] for r in await conn.execute(select(messages.c.message_id_header))}
            addresses = {r[0] for r in await conn.execute(select(accounts.c.address))}
    finally:
        await db.close()
    return ids, addresses


def _modes(root: Path) -> set[str]:
    bad = set()
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if (path.is_dir() and mode != 0o700) or (path.is_file() and mode != 0o600):
            bad.add(f"{path.relative_to(root)} {oct(mode)}")
    return bad


async def test_backup_under_load_restores_every_acknowledged_message(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "serve")
    restored = ServeProcess(tmp_path / "restored")
    dest = tmp_path / "backup"
    try:
        await asyncio.to_thread(proc.start, 60)
        for n in range(3):
            added = mssante(proc, "accounts", "add", f"ops{n}@mssante.test", "--type", "ORG",
                            "--name", f"Service {n}")
            assert added.returncode == 0, added.stderr
        load = Load()
        tasks = [asyncio.create_task(sender(proc, load)) for _ in range(SESSIONS)]
        deadline = time.monotonic() + 60
        while len(load.acked) < 50 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        before = set(load.acked)
        assert before, "no message was acknowledged before the backup"
        started = time.monotonic()
        result = await asyncio.to_thread(mssante, proc, "backup", str(dest))
        backup_seconds = time.monotonic() - started
        during = len(load.acked) - len(before)
        load.stop = True
        await asyncio.gather(*tasks)
        assert result.returncode == 0, result.stderr
        assert "master key file" in result.stderr and "NOT in this backup" in result.stderr
        assert proc.stop() == 0
        _ids, original_accounts = await _stored(proc)

        manifest = json.loads((dest / "manifest.json").read_text())
        size = sum(f["size"] for f in manifest["files"])
        print(result.stdout.strip())
        print(f"backup under load: {backup_seconds:.2f} s wall, {size} octets, "
              f"{manifest['counts']}, {during} messages acknowledged during the backup")
        assert not (dest / "files" / "master.key").exists()
        assert {"config", "pki", "trustspace", "directory", "database"} <= {
            f["role"] for f in manifest["files"]}
        assert not _modes(dest)

        result = mssante(restored, "restore", str(dest))
        assert result.returncode == 0, result.stderr
        assert "no master key" in result.stderr
        conf = restored.data_dir / "directory" / "slapd.conf"
        local = await asyncio.to_thread(
            subprocess.run, ["slapcat", "-g", "-f", str(conf), "-b", "dc=mssante,dc=test"],
            capture_output=True, text=True, check=True,
        )
        assert proc.demo_address in local.stdout  # loaded from the LDIF before any start
        shutil.copyfile(proc.data_dir / "master.key", restored.data_dir / "master.key")
        os.chmod(restored.data_dir / "master.key", 0o600)

        restored.demo_address, restored.demo_password = proc.demo_address, proc.demo_password
        await asyncio.to_thread(restored.start, 60)
        verify = mssante(restored, "proofs", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "ledger intact" in verify.stdout
        assert restored.stop() == 0
        ids, restored_accounts = await _stored(restored)
        missing = {f"<{t}@backup.test>" for t in before} - ids
        assert not missing, f"{len(missing)} acknowledged messages missing after restore"
        assert restored_accounts == original_accounts
        assert len(ids) == manifest["counts"]["messages"]
    finally:
        proc.kill()
        restored.kill()
