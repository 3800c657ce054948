"""Memory held by a TLS connection that waits (IMAP IDLE, an SMTP client between commands).

The implicit-TLS listeners put a TLS protocol between the socket and the session. asyncio's
own (``asyncio.sslproto.SSLProtocol``) allocates, for every connection, a zero-filled
256 KiB read buffer that it keeps for the connection's life: 10,000 idle IMAP clients then
hold 2.5 GB for buffers that are only used for the instant of a socket read. The issue's
target is 10,000 IDLE connections under 1 GB in all. The gateway's TLS layer
(:mod:`trustspace.tls_layer`) reads through one buffer per process instead (asyncio), or
uses uvloop's TLS protocol, whose buffer is allocated but only touched as far as it is
read into.

Python allocations are counted with tracemalloc while real TLS clients (blocking ``ssl``
sockets in a thread: OpenSSL's own memory is not traced, so only the server side counts)
connect and wait.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

CONNECTIONS = 60
PER_CONNECTION_LIMIT = 64 * 1024  # asyncio's buffer alone is 256 KiB


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """A full gateway that lets one address open every connection of the test."""
    settings = gateway_settings(tmp_path / "gw", smtp={"max_connections_per_ip": 200})
    async with running_gateway(settings) as running:
        yield running


def _open(port: int, ctx: ssl.SSLContext, count: int, greeting: bytes) -> list[ssl.SSLSocket]:
    socks = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert tls.recv(4096).startswith(greeting)
        socks.append(tls)
    return socks


async def _held_per_connection(port: int, ctx: ssl.SSLContext, greeting: bytes) -> float:
    await asyncio.to_thread(_open, port, ctx, 3, greeting)  # warm caches, sessions, imports
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        socks = await asyncio.to_thread(_open, port, ctx, CONNECTIONS, greeting)
        await asyncio.sleep(0.2)  # let the server finish its side of every greeting
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for sock in socks:
        sock.close()
    return held / CONNECTIONS


async def test_idle_implicit_tls_imap_connection_holds_no_large_read_buffer(
        gateway: RunningGateway) -> None:
    """IMAP on 993: each waiting connection holds well under asyncio's 256 KiB buffer."""
    imap = next(s for s in gateway.gw.services if s.name == "IMAP")
    port = imap.server.tls_port  # type: ignore[attr-defined]
    per = await _held_per_connection(port, gateway.client_context(), b"* OK")
    assert per < PER_CONNECTION_LIMIT, f"{per / 1024:.0f} KiB per idle TLS connection"


async def test_idle_implicit_tls_smtp_connection_holds_no_large_read_buffer(
        gateway: RunningGateway) -> None:
    """SMTP on 465 (RFC 8314): the same TLS layer, the same bound."""
    per = await _held_per_connection(gateway.submissions_port, gateway.client_context(),
                                     b"220 ")
    assert per < PER_CONNECTION_LIMIT, f"{per / 1024:.0f} KiB per idle TLS connection"
