"""``mssante queue list|show|retry|delete`` on a real database, with exit codes."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from accounts.mailboxes import add_mailbox
from config import load_settings
from gateway.commands.queue import command
from gateway.context import CliContext
from mail.changes import ChangeHub
from mail.pipeline import Delivery, Pipeline, RemoteTarget
from storage import accounts, folders, proofs
from storage import messages as message_rows
from storage import queue as queue_rows
from storage.database import open_database

SENDER = "alice@mssante.test"
RAW = (b"From: alice@mssante.test\r\nTo: bob@hopital-b.mssante.test\r\nSubject: cli\r\n"
       b"Message-ID: <cli@mssante.test>\r\n\r\nbody\r\n")


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    obj = CliContext(config_file=None, data_dir=tmp_path)
    result = CliRunner().invoke(command, list(args), obj=obj)
    return result.exit_code, result.stdout, result.stderr


def queued(tmp_path: Path, *recipients: str) -> list[int]:
    async def go() -> list[int]:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        pipeline = Pipeline(db, settings, ChangeHub())
        await pipeline.start()
        try:
            await add_mailbox(db, SENDER, type="ORG", name="Alice")
            stored = await pipeline.submit(Delivery(
                raw=RAW, sender=SENDER, remote=[RemoteTarget(r) for r in recipients]))
            return stored.queue_ids
        finally:
            await pipeline.stop()
            await db.close()
    return asyncio.run(go())


def state(tmp_path: Path) -> tuple[list[queue_rows.QueueItem], list[str], list[bytes]]:
    async def go() -> tuple[list[queue_rows.QueueItem], list[str], list[bytes]]:
        from smtp.outbound_rows import list_rows
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            async with db.read() as conn:
                rows = await list_rows(conn)
                kinds = [p.kind for p in await proofs.get_by_message(conn, "<cli@mssante.test>")]
                account = await accounts.get_by_address(conn, SENDER)
                assert account is not None
                inbox = await folders.get(conn, account.id, "INBOX")
                assert inbox is not None
                entries = await message_rows.fetch_range(conn, inbox.id)
                raws = [await db.blobs.read(conn, e.blob_id) for e in entries if e.blob_id]
            return rows, kinds, raws
        finally:
            await db.close()
    return asyncio.run(go())


def test_list_and_show(tmp_path: Path) -> None:
    [qid] = queued(tmp_path, "bob@hopital-b.mssante.test")
    code, out, _ = run(tmp_path, "list")
    assert code == 0
    assert "bob@hopital-b.mssante.test" in out and "queued" in out and "1 row(s)" in out
    code, out, _ = run(tmp_path, "show", str(qid))
    assert code == 0
    assert f"id: {qid}" in out and "message-id: <cli@mssante.test>" in out
    assert "state: queued" in out


def test_list_shows_the_whole_last_reply(tmp_path: Path) -> None:
    """An operator reads why a peer deferred the message: the reply is not cut at 60."""
    [qid] = queued(tmp_path, "bob@hopital-b.mssante.test")
    reply = ("451 4.7.5 TLS with 127.0.0.1:2525 failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
             "certificate verify failed: IP address mismatch, certificate is not valid for "
             "'127.0.0.1'")

    async def defer() -> None:
        db = await open_database(load_settings(data_dir=tmp_path, env={}), may_create_key=True)
        try:
            async with db.begin() as conn:
                await queue_rows.mark_deferred(conn, qid, reply, datetime.now(UTC))
        finally:
            await db.close()

    asyncio.run(defer())
    code, out, _ = run(tmp_path, "list")
    assert code == 0
    assert reply in out


def test_unknown_or_malformed_id_exits_2_naming_it(tmp_path: Path) -> None:
    queued(tmp_path, "bob@hopital-b.mssante.test")
    for verb in ("show", "retry", "delete"):
        code, _, err = run(tmp_path, verb, "999")
        assert code == 2 and "queue row 999 does not exist" in err, (verb, err)
    code, _, err = run(tmp_path, "show", "abc")
    assert code == 2 and "'abc'" in err
    code, _, err = run(tmp_path, "retry")
    assert code == 2 and "--all" in err


def test_retry_makes_rows_due(tmp_path: Path) -> None:
    ids = queued(tmp_path, "bob@hopital-b.mssante.test", "carol@hopital-b.mssante.test")
    code, out, _ = run(tmp_path, "retry", str(ids[0]))
    assert code == 0 and "1 row(s) due now" in out
    code, out, _ = run(tmp_path, "retry", "--all")
    assert code == 0 and "2 row(s) due now" in out


def test_delete_records_a_proof_and_sends_a_dsn(tmp_path: Path) -> None:
    ids = queued(tmp_path, "bob@hopital-b.mssante.test", "carol@hopital-b.mssante.test")
    code, out, _ = run(tmp_path, "delete", str(ids[0]))
    assert code == 0 and "deleted; sender notified" in out
    code, out, _ = run(tmp_path, "delete", "--no-dsn", str(ids[1]))
    assert code == 0 and "notified" not in out
    rows, kinds, raws = state(tmp_path)
    assert rows == []
    assert kinds.count("bounced") == 2 and kinds.count("dsn-sent") == 1
    [dsn] = [email.message_from_bytes(r, policy=email.policy.default) for r in raws]
    assert dsn.get_content_type() == "multipart/report"
    assert "deleted by administrator" in dsn.as_string()
