"""``mssante proofs``: verify, show and checkpoint on a real database file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from config import load_settings
from storage import proofs
from storage.database import open_database
from storage.schema import proofs as proofs_table

MSSANTE = str(Path(sys.executable).with_name("mssante"))


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(data_dir)
    return subprocess.run([MSSANTE, *args], env=env, capture_output=True, text=True, timeout=60)


async def seed(data_dir: Path) -> None:
    db = await open_database(load_settings(data_dir=data_dir, env={}), may_create_key=True)
    async with db.begin() as conn:
        for kind in ("submitted", "delivered", "read"):
            await proofs.append(conn, kind=kind, message_ref="<m1@mssante.test>",
                                content_sha256="ab" * 32, actor="demo@mssante.test",
                                details={"step": kind})
    await db.close()


async def tamper(data_dir: Path) -> None:
    db = await open_database(load_settings(data_dir=data_dir, env={}), may_create_key=False)
    async with db.begin() as conn:
        await conn.execute(
            update(proofs_table).where(proofs_table.c.seq == 2).values(actor="someone@else.test")
        )
    await db.close()


def test_verify_show_checkpoint_and_tamper_detection(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    signed = cli(tmp_path, "proofs", "checkpoint")
    assert signed.returncode == 0 and "checkpoint signed at seq 3" in signed.stdout
    ok = cli(tmp_path, "proofs", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "3 records, 1 signed checkpoints" in ok.stdout and "ledger intact" in ok.stdout
    shown = cli(tmp_path, "proofs", "show", "m1@mssante.test")
    assert shown.returncode == 0
    assert [line.split()[2] for line in shown.stdout.splitlines()[1:]] == [
        "submitted", "delivered", "read"]
    unknown = cli(tmp_path, "proofs", "show", "<nope@x.test>")
    assert unknown.returncode == 2 and "<nope@x.test>" in unknown.stderr

    asyncio.run(tamper(tmp_path))
    bad = cli(tmp_path, "proofs", "verify")
    assert bad.returncode == 1
    assert "problem:" in bad.stderr and "verification failed" in bad.stderr
    in_two = cli(tmp_path, "proofs", "verify", "--workers", "2")  # the same report
    assert in_two.returncode == 1 and in_two.stderr == bad.stderr
    zero = cli(tmp_path, "proofs", "verify", "--workers", "0")
    assert zero.returncode == 2 and "'--workers': 0 is not" in zero.stderr, zero.stderr
