"""Accept means durable: SIGKILL ``mssante serve`` under load, restart, count what survived.

Twenty concurrent submission sessions send messages with unique Message-IDs while the
gateway is killed (SIGKILL: no shutdown code runs) five times. Afterwards every message that
got a 250 must be stored exactly once (message row, INBOX row, submitted and delivered
proofs), messages without a reply may exist at most once, and nothing may half-exist.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import aiosmtplib
import pytest
from sqlalchemy import func, select

from storage.database import open_database
from storage.schema import blobs, folder_messages, messages, proofs
from tests.fixtures.gateway import ServeProcess

pytestmark = pytest.mark.timeout(120)

SESSIONS = 20
KILLS = 5


class Load:
    """Tokens by outcome: acknowledged with 250, or sent without a reply (uncertain)."""

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.uncertain: set[str] = set()
        self.stop = False


async def sender(proc: ServeProcess, load: Load) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port, timeout=10,
                             start_tls=True, tls_context=_context(proc))
    try:
        await client.connect()
        await client.login(proc.demo_address, proc.demo_password)
        while not load.stop:
            token = uuid.uuid4().hex
            body = (
                f"From: <{proc.demo_address}>\r\nTo: <{proc.demo_address}>\r\n"
                f"Subject: crash {token}\r\nMessage-ID: <{token}@crash.test>\r\n\r\n"
                + "x" * 2000 + "\r\n"
            )
            load.uncertain.add(token)
            await client.sendmail(proc.demo_address, [proc.demo_address], body)
            load.uncertain.discard(token)
            load.acked.add(token)
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        return  # the gateway was killed under us
    finally:
        client.close()


def _context(proc: ServeProcess):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cafile=str(proc.ca_file))


async def test_sigkill_under_load_loses_nothing_acknowledged(
    serve_process: ServeProcess,
) -> None:
    proc = serve_process
    load = Load()
    await asyncio.to_thread(proc.start)
    for _round in range(KILLS):
        load.stop = False
        before = len(load.acked)
        tasks = [asyncio.create_task(sender(proc, load)) for _ in range(SESSIONS)]
        deadline = time.monotonic() + 30  # generous: a loaded machine logs in slowly
        # Kill once this round has acknowledged some messages (in the middle of the load).
        target = before + random.randint(20, 60)
        while len(load.acked) < target and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # polling a counter the senders grow
        proc.kill()
        load.stop = True
        await asyncio.gather(*tasks)
        assert len(load.acked) > before, "no message was accepted in this round"
        await asyncio.to_thread(proc.start)
    assert proc.stop() == 0

    settings = proc.settings()
    db = await open_database(settings, may_create_key=False)
    try:
        async with db.read() as conn:
            counts = dict(
                (row[0], row[1])
                for row in await conn.execute(
                    select(messages.c.message_id_header, func.count())
                    .group_by(messages.c.message_id_header)
                )
            )
            orphans_without_folder = (await conn.execute(
                select(func.count()).select_from(messages).where(
                    ~select(folder_messages.c.id)
                    .where(folder_messages.c.message_id == messages.c.id).exists())
            )).scalar_one()
            messages_without_blob = (await conn.execute(
                select(func.count()).select_from(messages).where(
                    ~select(blobs.c.id).where(blobs.c.id == messages.c.blob_id).exists())
            )).scalar_one()
            blobs_without_message = (await conn.execute(
                select(func.count()).select_from(blobs).where(
                    ~select(messages.c.id).where(messages.c.blob_id == blobs.c.id).exists())
            )).scalar_one()
            folder_rows = (await conn.execute(
                select(func.count()).select_from(folder_messages))).scalar_one()
            proof_kinds = dict(
                (row[0], row[1])
                for row in await conn.execute(
                    select(proofs.c.kind, func.count()).group_by(proofs.c.kind))
            )
    finally:
        await db.close()

    acked_ids = {f"<{t}@crash.test>" for t in load.acked}
    missing = [m for m in acked_ids if counts.get(m, 0) != 1]
    assert not missing, f"{len(missing)} acknowledged messages missing or duplicated"
    uncertain_ids = {f"<{t}@crash.test>" for t in load.uncertain}
    assert all(counts.get(m, 0) <= 1 for m in uncertain_ids)
    unknown = set(counts) - acked_ids - uncertain_ids
    assert not unknown, f"messages nobody sent: {sorted(unknown)[:3]}"
    total = sum(counts.values())
    assert orphans_without_folder == 0
    assert messages_without_blob == 0
    assert blobs_without_message == 0
    assert folder_rows == total
    assert proof_kinds.get("submitted") == total
    assert proof_kinds.get("delivered") == total
    assert len(load.acked) >= KILLS * 20
