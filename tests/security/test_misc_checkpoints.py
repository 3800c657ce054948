"""The proof ledger is signed at start-up, every N records and every T seconds.

Before: one checkpoint every 300 s counted from each start and none at start-up, so a
gateway that crash-restarts more often than that never signs its ledger; and a busy one
could write any number of records between two checkpoints.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage import proofs as ledger
from storage.database import Database, open_database
from storage.schema import proof_checkpoints, proofs
from tests.fixtures.gateway import RunningGateway, ServeProcess, gateway_settings, running_gateway

pytestmark = pytest.mark.timeout(120)


def submit(port: int, ca_file: Path, address: str, password: str, count: int) -> None:
    """``count`` messages from ``address`` to itself over submission (two proofs each)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=ssl.create_default_context(cafile=str(ca_file)))
        client.login(address, password)
        for n in range(count):
            client.sendmail(address, [address], (
                f"From: <{address}>\r\nTo: <{address}>\r\nSubject: proof {n}\r\n"
                f"Message-ID: <ckpt-{n}-{time.monotonic_ns()}@client.test>\r\n\r\nbody\r\n"
            ).encode())


async def ledger_state(proc: ServeProcess) -> tuple[int, int, int]:
    """(newest record seq, newest checkpoint seq, number of checkpoints) read from the store."""
    db = await open_database(proc.settings(), may_create_key=False)
    try:
        async with db.read() as conn:
            head = (await conn.execute(select(func.max(proofs.c.seq)))).scalar() or 0
            signed = (await conn.execute(select(func.max(proof_checkpoints.c.seq)))).scalar()
            count = (await conn.execute(
                select(func.count()).select_from(proof_checkpoints))).scalar_one()
    finally:
        await db.close()
    return int(head), int(signed or 0), int(count)


async def test_restart_after_sigkill_signs_every_record_at_start(
    serve_process: ServeProcess,
) -> None:
    proc = serve_process
    await asyncio.to_thread(proc.start)
    await asyncio.to_thread(
        submit, proc.submission_port, proc.ca_file, proc.demo_address, proc.demo_password, 3)
    proc.kill()  # SIGKILL: no shutdown checkpoint
    head, signed, _count = await ledger_state(proc)
    assert head >= 6 and signed < head, "the test needs unsigned records left by the crash"

    await asyncio.to_thread(proc.start)
    try:
        after_head, after_signed, count = await ledger_state(proc)
        assert count >= 1, "no checkpoint was signed at start-up"
        assert after_signed >= head, (
            f"the start-up checkpoint covers records up to {after_signed}, "
            f"the crashed gateway had written {head}"
        )
        assert after_head >= head
    finally:
        proc.kill()


async def _wait_checkpoint(gw: RunningGateway, at_least: int, within: float) -> int:
    assert gw.gw.db is not None
    deadline = time.monotonic() + within
    while True:
        async with gw.gw.db.read() as conn:
            signed = (await conn.execute(select(func.max(proof_checkpoints.c.seq)))).scalar()
        if signed is not None and signed >= at_least:
            return int(signed)
        if time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint at or after record {at_least} "
                                 f"within {within}s (newest: {signed})")
        await asyncio.sleep(0.1)


async def test_every_n_records_signs_without_waiting_the_interval(tmp_path: Path) -> None:
    settings = gateway_settings(
        tmp_path / "gw",
        proofs={"checkpoint_every_records": 5, "checkpoint_interval": 3600.0},
    )
    async with running_gateway(settings) as gw:
        await asyncio.to_thread(
            submit, gw.submission_port, gw.ca_file, gw.demo_address, gw.demo_password, 4)
        # 4 messages, 2 proofs each: at least one checkpoint at or past record 5, long
        # before the hour-long interval.
        await _wait_checkpoint(gw, 5, within=20)


async def test_interval_signs_a_few_records(tmp_path: Path) -> None:
    settings = gateway_settings(
        tmp_path / "gw",
        proofs={"checkpoint_every_records": 100000, "checkpoint_interval": 1.0},
    )
    async with running_gateway(settings) as gw:
        await asyncio.to_thread(
            submit, gw.submission_port, gw.ca_file, gw.demo_address, gw.demo_password, 1)
        await _wait_checkpoint(gw, 2, within=20)


async def test_unsigned_records_counts_what_the_newest_checkpoint_misses(
    database: Database,
) -> None:
    """The count the checkpoint job polls, on both engines."""
    async with database.begin() as conn:
        assert await ledger.unsigned_records(conn) == 0
        for n in range(3):
            await ledger.append(conn, kind="submitted", message_ref=f"<{n}@x>")
        assert await ledger.unsigned_records(conn) == 3
        assert await ledger.checkpoint(conn, database.keyring) == 3
        assert await ledger.unsigned_records(conn) == 0
        await ledger.append(conn, kind="delivered", message_ref="<0@x>")
        assert await ledger.unsigned_records(conn) == 1
