"""Retention with a controllable clock: the purge counts from arrival with the setting in
force now, the owner is told 7 days before, traces have their own lifetime, a purge cut
short finishes on the next run, and the ledger still verifies afterwards."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import imapclient
import pytest
from sqlalchemy import func, select

from accounts.mailboxes import add_mailbox
from mail.changes import ChangeHub
from mail.expiry_digest import send_expiry_digests
from mail.pipeline import Delivery, LocalTarget, Pipeline
from mail.retention import purge_expired, purge_traces
from storage import folders, proofs
from storage import traces as trace_rows
from storage.accounts import get_by_address
from storage.database import Database
from storage.schema import folder_messages, messages, meta
from storage.schema import proofs as proof_table
from storage.schema import traces as trace_table
from storage.types import utcnow
from tests.fixtures.gateway import gateway_settings, running_gateway

SUBJECT = "Compte rendu echographie Mme Patiente"


def _raw(n: int, subject: str = SUBJECT) -> bytes:
    return (f"From: Dr Bob <bob@mssante.test>\r\nTo: demo@mssante.test\r\n"
            f"Subject: {subject} {n}\r\nDate: Mon, 05 Oct 2026 10:00:00 +0000\r\n"
            f"Message-ID: <ret{n}@mssante.test>\r\n\r\nCorps du message {n}\r\n").encode()


async def _setup(db: Database, count: int) -> tuple[Pipeline, ChangeHub, int, int, int]:
    """A running pipeline and ``count`` messages delivered now to demo's INBOX."""
    hub = ChangeHub()
    pipeline = Pipeline(db, db.settings, hub)
    await pipeline.start()
    box = await add_mailbox(db, "demo@mssante.test", type="PER", name="Dr Demo",
                            idnat="810000000001")
    await add_mailbox(db, "bob@mssante.test", type="PER", name="Dr Bob",
                      idnat="810000000002")
    async with db.read() as conn:
        inbox = await folders.get(conn, box.account.id, "INBOX")
    assert inbox is not None
    target = LocalTarget("demo@mssante.test", box.account.id, inbox.id)
    await pipeline.submit_many([Delivery(raw=_raw(n), sender="bob@mssante.test",
                                         local=[target]) for n in range(count)])
    return pipeline, hub, box.account.id, inbox.id, count


async def _inbox_subjects(db: Database, folder_id: int) -> list[bytes]:
    async with db.read() as conn:
        rows = (await conn.execute(
            select(messages.c.blob_id).join(
                folder_messages, folder_messages.c.message_id == messages.c.id)
            .where(folder_messages.c.folder_id == folder_id,
                   folder_messages.c.expunged_modseq.is_(None))
            .order_by(folder_messages.c.uid))).scalars().all()
        return [await db.blobs.read(conn, int(b)) for b in rows if b is not None]


async def test_digest_at_day_85_once_per_message(
    database: Database, caplog: pytest.LogCaptureFixture,
) -> None:
    db = database
    caplog.set_level(logging.DEBUG)
    pipeline, _, owner, inbox, _ = await _setup(db, 2)
    try:
        start = utcnow()
        assert (await send_expiry_digests(db, pipeline, now=start + timedelta(days=84))
                ).digests == 0
        report = await send_expiry_digests(db, pipeline, now=start + timedelta(days=85))
        assert report.digests == 1 and report.messages == 2
        # Again (the next hourly run, or after a crash): nothing more is sent.
        assert (await send_expiry_digests(db, pipeline, now=start + timedelta(days=86))
                ).digests == 0
        bodies = await _inbox_subjects(db, inbox)
        digests = [b for b in bodies if b"expiring soon" in b]
        assert len(digests) == 1
        text = digests[0].decode()
        assert f"{SUBJECT} 0" in text and f"{SUBJECT} 1" in text
        assert "bob@mssante.test" in text and "2026-10-05" in text
        # Disabled ([retention] expiry_digest = false): nothing is sent.
        db.settings = replace(db.settings, retention=replace(db.settings.retention,
                                                             expiry_digest=False))
        await pipeline.submit(Delivery(raw=_raw(9), sender="bob@mssante.test", local=[
            LocalTarget("demo@mssante.test", owner, inbox)]))
        assert (await send_expiry_digests(db, pipeline, now=start + timedelta(days=120))
                ).digests == 0
    finally:
        await pipeline.stop()
    assert SUBJECT not in caplog.text and "bob@mssante.test" not in caplog.text


async def test_changed_retention_applies_to_stored_messages_and_proofs_stay_intact(
    database: Database,
) -> None:
    db = database
    pipeline, hub, _, inbox, _ = await _setup(db, 3)
    await pipeline.stop()
    watcher = hub.watch(inbox)
    start = utcnow()
    # Stored under 92 days (expires_at stamped at day 92); the operator now keeps 90.
    db.settings = replace(db.settings, storage=replace(db.settings.storage,
                                                       body_retention_days=90))
    assert (await purge_expired(db, hub, now=start + timedelta(days=89))).purged == 0
    assert not watcher.is_set()
    assert len(await _inbox_subjects(db, inbox)) == 3
    report = await purge_expired(db, hub, now=start + timedelta(days=91))
    assert report.purged == 3 and report.mailbox_rows == 3
    assert watcher.is_set()  # IMAP sessions (IDLE too) are told of the EXPUNGEs
    assert await _inbox_subjects(db, inbox) == []
    async with db.begin() as conn:
        await proofs.checkpoint(conn, db.keyring)
    async with db.read() as conn:
        result = await proofs.verify(conn, db.keyring)
        kinds = [p.kind for p in await proofs.get_by_message(conn, "<ret0@mssante.test>")]
    assert result.ok, result.problems
    assert kinds == ["delivered", "purged"]


async def test_a_purge_cut_short_finishes_on_the_next_run(database: Database) -> None:
    db = database
    pipeline, hub, _, _, count = await _setup(db, 12)
    try:
        await send_expiry_digests(db, pipeline, now=utcnow() + timedelta(days=86))
    finally:
        await pipeline.stop()
    later = utcnow() + timedelta(days=100)
    task = asyncio.create_task(purge_expired(db, hub, now=later, batch=1, pause=0.05))

    async def purged() -> int:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(proof_table)
                                           .where(proof_table.c.kind == "purged"))).scalar_one())
    async with asyncio.timeout(30):
        while True:
            if await purged() >= 3:
                break
            await asyncio.sleep(0.01)
    task.cancel()  # the process dies midway
    with pytest.raises(asyncio.CancelledError):
        await task
    done = await purged()
    assert 3 <= done < count + 1
    report = await purge_expired(db, hub, now=later)
    # count messages + the digest itself, each purged exactly once.
    assert done + report.purged == count + 1
    assert await purged() == count + 1
    async with db.read() as conn:
        left = (await conn.execute(select(func.count()).select_from(meta)
                                   .where(meta.c.key.like("expiry-digest:%")))).scalar_one()
    assert left == 0  # the digest's markers went with the messages


async def test_traces_have_their_own_lifetime(sqlite_database: Database) -> None:
    db = sqlite_database
    async with db.begin() as conn:
        await trace_rows.record(conn, session_id="s1", service="imap", event="login",
                                detail={"method": "PLAIN"})
    assert db.settings.retention.traces_days == 365
    assert await purge_traces(db, now=utcnow() + timedelta(days=364)) == 0
    assert await purge_traces(db, now=utcnow() + timedelta(days=366), batch=1) == 1
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(trace_table))
                ).scalar_one() == 0


async def test_two_runs_at_once_send_one_digest(sqlite_database: Database) -> None:
    db = sqlite_database
    pipeline, _, _, inbox, _ = await _setup(db, 3)
    try:
        day = utcnow() + timedelta(days=85)
        reports = await asyncio.gather(send_expiry_digests(db, pipeline, now=day),
                                       send_expiry_digests(db, pipeline, now=day))
    finally:
        await pipeline.stop()
    assert sorted(r.digests for r in reports) == [0, 1]
    assert len([b for b in await _inbox_subjects(db, inbox) if b"expiring soon" in b]) == 1


async def test_idle_session_sees_the_purge_expunge(tmp_path: Path) -> None:
    """A real IMAP client in IDLE is told of the EXPUNGE of a purged message."""
    async with running_gateway(gateway_settings(tmp_path / "gw")) as gw:
        bob, bob_pw = await gw.add_mailbox("bob")
        me = gw.demo_address
        assert gw.gw.db is not None and gw.gw.pipeline is not None
        async with gw.gw.db.read() as conn:
            account = await get_by_address(conn, bob)
            assert account is not None
            inbox = await folders.get(conn, account.id, "INBOX")
        assert inbox is not None
        await gw.gw.pipeline.submit(Delivery(raw=_raw(1), sender=me, local=[
            LocalTarget(bob, account.id, inbox.id)]))
        imap = next(s for s in gw.gw.services if s.name == "IMAP")
        ctx = ssl.create_default_context(cafile=str(gw.ca_file))
        port = imap.server.tls_port  # type: ignore[attr-defined]
        client = await asyncio.to_thread(imapclient.IMAPClient, "127.0.0.1", port=port,
                                         ssl=True, ssl_context=ctx, timeout=20)
        try:
            await asyncio.to_thread(client.login, bob, bob_pw)
            await asyncio.to_thread(client.select_folder, "INBOX")
            await asyncio.to_thread(client.idle)
            report = await purge_expired(gw.gw.db, gw.gw.changes,
                                         now=utcnow() + timedelta(days=100))
            assert report.purged >= 1
            responses = await asyncio.to_thread(client.idle_check, 15)
            await asyncio.to_thread(client.idle_done)
        finally:
            await asyncio.to_thread(client.logout)
        assert (1, b"EXPUNGE") in responses, responses
