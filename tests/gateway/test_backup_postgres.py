"""``mssante backup`` / ``restore`` with PostgreSQL: ``pg_dump -Fc`` of a running gateway's
database, ``pg_restore`` into another empty database, refused into a non-empty one."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess
from tests.fixtures.postgres import PgCluster

pytestmark = pytest.mark.timeout(240)

PASSWORD = "pg-secret-never-in-argv"


def mssante(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, *args], env=proc._env(), capture_output=True, text=True,
                          timeout=180)


def send(proc: ServeProcess, count: int) -> set[str]:
    ctx = ssl.create_default_context(cafile=str(proc.ca_file))
    ids = set()
    with smtplib.SMTP("127.0.0.1", proc.submission_port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(proc.demo_address, proc.demo_password)
        for _ in range(count):
            token = f"<{uuid.uuid4().hex}@pg-backup.test>"
            smtp.sendmail(proc.demo_address, [proc.demo_address],
                          f"From: <{proc.demo_address}>\r\nTo: <{proc.demo_address}>\r\n"
                          f"Subject: pg\r\nMessage-ID: {token}\r\n\r\nbody\r\n")
            ids.add(token)
    return ids


async def test_postgres_backup_and_restore(pg_cluster: PgCluster, tmp_path: Path) -> None:
    source_url = pg_cluster.url(await pg_cluster.create_database(), password=PASSWORD)
    target_url = pg_cluster.url(await pg_cluster.create_database(), password=PASSWORD)
    proc = ServeProcess(tmp_path / "serve", env={"MSSANTE_DATABASE_URL": source_url})
    restored = ServeProcess(tmp_path / "restored", env={"MSSANTE_DATABASE_URL": target_url})
    busy = ServeProcess(tmp_path / "busy", env={"MSSANTE_DATABASE_URL": source_url})
    dest = tmp_path / "backup"
    try:
        await asyncio.to_thread(proc.start, 60)
        sent = await asyncio.to_thread(send, proc, 20)
        result = await asyncio.to_thread(mssante, proc, "backup", str(dest))
        assert result.returncode == 0, result.stderr
        assert "database postgresql" in result.stdout
        assert (dest / "database.pgdump").stat().st_mode & 0o777 == 0o600
        assert PASSWORD not in (dest / "manifest.json").read_text()
        assert proc.stop() == 0

        refused = mssante(busy, "restore", str(dest))
        assert refused.returncode == 2
        assert "already holds" in refused.stderr and "restore only into an empty" in \
            refused.stderr
        assert not any(busy.data_dir.iterdir())

        result = mssante(restored, "restore", str(dest), "--key-file",
                         str(proc.data_dir / "master.key"))
        assert result.returncode == 0, result.stderr
        restored.demo_address, restored.demo_password = proc.demo_address, proc.demo_password
        await asyncio.to_thread(restored.start, 60)
        verify = mssante(restored, "proofs", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        more = await asyncio.to_thread(send, restored, 2)  # the restored one works
        assert restored.stop() == 0
        listed = mssante(restored, "proofs", "show", sorted(sent)[0])
        assert listed.returncode == 0 and "submitted" in listed.stdout
        assert len(more) == 2
    finally:
        for p in (proc, restored, busy):
            p.kill()
