"""RFC 3502 MULTIAPPEND: one APPEND of several messages is stored all together or not at all."""

from __future__ import annotations

import asyncio
import imaplib
import socket

import pytest

from mail.pipeline import Delivery, LocalTarget
from tests.fixtures.imap import ALICE, ImapEnv, message


def _raw_session(env: ImapEnv) -> tuple[socket.socket, object]:
    ctx = env.client_ssl()
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.tls_port), timeout=10),
                           server_hostname="127.0.0.1")
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), env.alice_password.encode()))
    _until(f, b"a ")
    return sock, f


def _until(f: object, tag: bytes) -> bytes:
    while True:
        line: bytes = f.readline()  # type: ignore[attr-defined]
        assert line, "connection closed"
        if line.startswith(tag):
            return line


async def test_multiappend_stores_all_with_appenduid(imap_env: ImapEnv) -> None:
    msgs = [message(n) for n in (1, 2, 3)]

    def run() -> None:
        sock, f = _raw_session(imap_env)
        with sock:
            cmd = b"m APPEND Drafts"
            for i, m in enumerate(msgs):
                cmd += b" (\\Seen)" if i == 1 else b""
                cmd += b" {%d+}\r\n" % len(m) + m
            sock.sendall(cmd + b"\r\n")
            line = _until(f, b"m ")
            assert line.startswith(b"m OK [APPENDUID "), line
            assert line.split()[4].rstrip(b"]") == b"1:3"
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(), timeout=10)
        imap.login(ALICE, imap_env.alice_password)
        assert b"MULTIAPPEND" in imap.capability()[1][0]
        typ, data = imap.select("Drafts")
        assert data == [b"3"]
        typ, data = imap.fetch("2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"\\Seen" in data[0][0] and b"Compte rendu 2" in data[0][1]
        imap.logout()
    await asyncio.to_thread(run)


async def test_multiappend_refusal_stores_nothing(imap_env: ImapEnv) -> None:
    limit = imap_env.settings.imap.max_literal_size

    def run() -> None:
        sock, f = _raw_session(imap_env)
        with sock:
            good = message(1)
            sock.sendall(b"m APPEND Drafts {%d+}\r\n" % len(good) + good + b" {0+}\r\n\r\n")
            line = _until(f, b"m ")
            assert line.startswith(b"m NO [CANNOT]"), line
            sock.sendall(b"s STATUS Drafts (MESSAGES)\r\n")
            assert b"MESSAGES 0" in f.readline()  # type: ignore[attr-defined]
    assert limit > 0
    await asyncio.to_thread(run)


async def test_submit_many_fails_together_and_spares_the_batch(imap_env: ImapEnv) -> None:
    """A unit that cannot be stored fails as a whole; other messages of the same group
    commit are still stored (the batch is retried unit by unit, never message by message)."""
    pipeline = imap_env.gateway.pipeline
    assert pipeline is not None
    drafts = await imap_env.folder_id(ALICE, "Drafts")
    inbox = await imap_env.folder_id(ALICE, "INBOX")
    account = 1

    def d(n: int, folder: int) -> Delivery:
        return Delivery(raw=message(n), sender=ALICE, record_delivery=False,
                        local=[LocalTarget(ALICE, account, folder)])

    missing_folder = 10_000_000
    unit = pipeline.submit_many([d(1, drafts), d(2, missing_folder)])
    other = pipeline.submit(d(3, inbox))
    results = await asyncio.gather(unit, other, return_exceptions=True)
    assert isinstance(results[0], Exception)
    assert not isinstance(results[1], Exception) and results[1].uids[inbox] >= 1
    store_counts = await _count(imap_env, drafts)
    assert store_counts == 0
    with pytest.raises(RuntimeError, match="not running"):
        await pipeline.stop()
        await pipeline.submit_many([d(4, drafts)])


async def _count(env: ImapEnv, folder_id: int) -> int:
    from sqlalchemy import func, select

    from storage.schema import folder_messages

    db = env.gateway.db
    assert db is not None
    async with db.read() as conn:
        return int((await conn.execute(
            select(func.count()).where(folder_messages.c.folder_id == folder_id)
        )).scalar_one())
