"""Two ``mssante serve`` nodes on one PostgreSQL behind HAProxy; one is killed (SIGKILL)
under load. Every message whose 250 a client saw is in the mailbox exactly once, and the
clients' next connections reach the other node."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import ssl
import time
from pathlib import Path

import aiosmtplib

from tests.fixtures.gateway import ServeProcess
from tests.fixtures.haproxy import haproxy
from tests.fixtures.postgres import PgCluster


def node(root: Path, url: str, first: Path | None = None) -> ServeProcess:
    root.mkdir(parents=True)
    if first is not None:  # README "Several nodes": the same key file and PKI
        shutil.copy2(first / "master.key", root / "master.key")
        shutil.copytree(first / "pki", root / "pki")
    return ServeProcess(root, env={
        "MSSANTE_DATABASE_URL": url, "MSSANTE_DIRECTORY_ENABLED": "false",
        "MSSANTE_GATEWAY_PROXY_PROTOCOL_FROM": "127.0.0.1"})


async def sender(port: int, ctx: ssl.SSLContext, login: tuple[str, str], name: str,
                 until: float, acknowledged: list[str], errors: list[str]) -> None:
    """A message per connection, as a hospital MTA or a phone does; on any error, the next
    connection (the balancer sends it to a live node)."""
    n = 0
    while time.monotonic() < until:
        n += 1
        subject = f"{name}-{n}"
        raw = (f"From: {login[0]}\r\nTo: {login[0]}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject}@kill.test>\r\n\r\nunder load\r\n").encode()
        try:
            await aiosmtplib.send(raw, sender=login[0], recipients=[login[0]],
                                  hostname="127.0.0.1", port=port, use_tls=True,
                                  tls_context=ctx, username=login[0], password=login[1],
                                  timeout=15)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.1)
            continue
        acknowledged.append(subject)


def stored_subjects(port: int, ctx: ssl.SSLContext, login: tuple[str, str]) -> list[str]:
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    try:
        imap.login(*login)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].decode().split(":", 1)[1].strip()
                for part in data if isinstance(part, tuple)]
    finally:
        imap.logout()


async def test_a_node_killed_under_load_loses_nothing_acknowledged(
        tmp_path: Path, pg_cluster: PgCluster) -> None:
    url = pg_cluster.url(await pg_cluster.create_database())
    first = node(tmp_path / "n1", url)
    second: ServeProcess | None = None
    try:
        await asyncio.to_thread(first.start, 60)
        second = node(tmp_path / "n2", url, first=tmp_path / "n1")
        await asyncio.to_thread(second.start, 60)
        login = (first.demo_address, first.demo_password)
        ctx = ssl.create_default_context(cafile=str(first.ca_file))
        backends = {name: [first.ports[var], second.ports[var]] for name, var in (
            ("submissions", "MSSANTE_SMTP_SUBMISSIONS_PORT"), ("imaps", "MSSANTE_IMAP_TLS_PORT"))}
        with haproxy(tmp_path / "haproxy", backends) as balancer:
            acknowledged: list[str] = []
            errors: list[str] = []
            until = time.monotonic() + 8.0
            load = [asyncio.create_task(sender(balancer.ports["submissions"], ctx, login,
                                               f"s{i}", until, acknowledged, errors))
                    for i in range(4)]
            await asyncio.sleep(3.0)
            before_kill = len(acknowledged)
            await asyncio.to_thread(first.kill)
            await asyncio.gather(*load)
            after_kill = len(acknowledged) - before_kill
            assert before_kill > 0 and after_kill > 0, (before_kill, after_kill, errors[:5])
            subjects = await asyncio.to_thread(
                stored_subjects, balancer.ports["imaps"], ctx, login)
        lost = sorted(set(acknowledged) - set(subjects))
        doubled = sorted({s for s in subjects if subjects.count(s) > 1})
        assert lost == [] and doubled == [], (lost, doubled)
        print(f"acknowledged={len(acknowledged)} before_kill={before_kill} "
              f"after_kill={after_kill} client_errors={len(errors)}")
    finally:
        first.kill()
        if second is not None:
            second.kill()
