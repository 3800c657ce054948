"""Two gateway nodes on one PostgreSQL behind HAProxy (PROXY protocol v2): SMTP and IMAP
through the balancer reach both nodes, every node sees the client's own address, and
when one node goes away the balancer's new connections go to the other without loss."""

from __future__ import annotations

import asyncio
import imaplib
import json
import shutil
import smtplib
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.runtime import Gateway
from storage.schema import traces
from tests.fixtures.gateway import gateway_settings
from tests.fixtures.haproxy import Balancer, haproxy
from tests.fixtures.postgres import PgCluster

CLIENT = "127.0.0.2"  # the client's own address; HAProxy connects from 127.0.0.1


def node(root: Path, url: str, first: Path | None = None) -> Gateway:
    """A node: own data directory; a second node gets the first one's key file and PKI
    (README, "Several nodes")."""
    root.mkdir(parents=True)
    if first is not None:
        shutil.copy2(first / "master.key", root / "master.key")
        shutil.copytree(first / "pki", root / "pki")
    settings = gateway_settings(
        root, database={"url": url}, directory={"enabled": False},
        gateway={"proxy_protocol_from": ["127.0.0.1"]})
    return Gateway(settings)


class SourceIMAP(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS from a chosen local address."""

    def __init__(self, host: str, port: int, source: str, ctx: ssl.SSLContext) -> None:
        self._source = source
        super().__init__(host, port, ssl_context=ctx)

    def _create_socket(self, timeout: Any) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def send(balancer: Balancer, ctx: ssl.SSLContext, login: tuple[str, str], subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = msg["To"] = login[0]
    msg["Subject"] = subject
    msg.set_content("through the balancer")
    with smtplib.SMTP_SSL("127.0.0.1", balancer.ports["submissions"], context=ctx,
                          source_address=(CLIENT, 0), timeout=30) as smtp:
        smtp.login(*login)
        smtp.send_message(msg)


def count(balancer: Balancer, ctx: ssl.SSLContext, login: tuple[str, str], word: str) -> int:
    imap = SourceIMAP("127.0.0.1", balancer.ports["imaps"], CLIENT, ctx)
    try:
        imap.login(*login)
        imap.select("INBOX")
        _, data = imap.search(None, "SUBJECT", word)
        return len(data[0].split())
    finally:
        imap.logout()


def ports(gw: Gateway) -> dict[str, int]:
    found: dict[str, int] = {}
    for service in gw.services:
        if service.name == "smtp":
            found["submissions"] = int(service.port("submissions"))  # type: ignore[attr-defined]
        if service.name == "IMAP":
            found["imaps"] = int(service.server.tls_port)  # type: ignore[attr-defined]
    return found


async def test_two_nodes_behind_haproxy(tmp_path: Path, pg_cluster: PgCluster) -> None:
    url = pg_cluster.url(await pg_cluster.create_database())
    first = node(tmp_path / "n1", url)
    await first.start()
    second = node(tmp_path / "n2", url, first=tmp_path / "n1")
    try:
        await second.start()
        assert first.first_start is not None
        login = (first.first_start.demo_address, first.first_start.demo_password)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "n1" / "pki" / "ca.pem"))
        p1, p2 = ports(first), ports(second)
        backends = {name: [p1[name], p2[name]] for name in ("submissions", "imaps")}
        with haproxy(tmp_path / "haproxy", backends) as balancer:
            for n in range(6):
                await asyncio.to_thread(send, balancer, ctx, login, f"alpha{n}")
            assert await asyncio.to_thread(count, balancer, ctx, login, "alpha") == 6
            assert await asyncio.to_thread(count, balancer, ctx, login, "alpha") == 6
            stats = balancer.stats()
            for name in ("submissions", "imaps"):
                served = [int(stats[(name, f"node{i}")]["stot"]) for i in (1, 2)]
                assert all(s > 0 for s in served), (name, served)
            # Every trace names the client, none the balancer.
            assert first.db is not None
            async with first.db.read() as conn:
                details = json.dumps([r.detail for r in (await conn.execute(
                    select(traces.c.detail).where(traces.c.event.like("%auth%")))).all()])
            assert CLIENT in details and "127.0.0.1" not in details, details
            # One node goes away: the balancer's health check takes it out, new
            # connections reach the other node, nothing is lost.
            await first.stop(grace=0)
            await asyncio.sleep(1.0)
            for n in range(4):
                await asyncio.to_thread(send, balancer, ctx, login, f"beta{n}")
            assert await asyncio.to_thread(count, balancer, ctx, login, "beta") == 4
            assert await asyncio.to_thread(count, balancer, ctx, login, "alpha") == 6
    finally:
        await second.stop(grace=0)
        await first.stop(grace=0)
