"""Ways a client can open a connection and drop it, for the connection bookkeeping tests.

Each probe opens one TCP connection to a listener of the gateway and abandons it in one
particular way (before the banner, half-closed, mid-command, mid-TLS-handshake, reset).
They are real sockets on loopback; the server must release each connection exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

Probe = Callable[["Listener"], Awaitable[None]]

_TIMEOUT = 10.0


@dataclass(frozen=True)
class Listener:
    """One listening port and how its protocol starts."""

    name: str
    port: int
    protocol: str  # "smtp" or "imap"
    implicit_tls: bool


def client_hello() -> bytes:
    """A real TLS ClientHello (the first flight of an ``ssl`` client)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


_HELLO = client_hello()


async def _open(listener: Listener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", listener.port), _TIMEOUT)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), _TIMEOUT)


async def _greeting(reader: asyncio.StreamReader) -> bytes:
    """The server's first line (SMTP 220 or IMAP * OK)."""
    return await asyncio.wait_for(reader.readline(), _TIMEOUT)


async def _smtp_reply(reader: asyncio.StreamReader) -> bytes:
    """One whole SMTP reply (multi-line included)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), _TIMEOUT)
        if len(line) < 4 or line[3:4] != b"-":
            return line


async def _to_plain_starttls(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Reads the greeting and asks for STARTTLS; returns once the server said go ahead."""
    await _greeting(reader)
    if listener.protocol == "smtp":
        writer.write(b"EHLO probe.example\r\n")
        await _smtp_reply(reader)
        writer.write(b"STARTTLS\r\n")
        reply = await _smtp_reply(reader)
        assert reply.startswith(b"220"), reply
    else:
        writer.write(b"s1 STARTTLS\r\n")
        reply = await asyncio.wait_for(reader.readline(), _TIMEOUT)
        assert reply.startswith(b"s1 OK"), reply


async def connect_then_close(listener: Listener) -> None:
    """A TCP health check: connect, close at once (before the banner or the handshake)."""
    _reader, writer = await _open(listener)
    await _close(writer)


async def connect_then_reset(listener: Listener) -> None:
    """Connect, then abort with a TCP reset (SO_LINGER 0)."""
    _reader, writer = await _open(listener)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def half_open(listener: Listener) -> None:
    """Send FIN (shutdown of the write side) and walk away without closing the socket."""
    _reader, writer = await _open(listener)
    if writer.can_write_eof():
        writer.write_eof()
    await asyncio.sleep(0)
    await _close(writer)


async def tls_abort(listener: Listener) -> None:
    """Start the TLS handshake (implicit, or after STARTTLS) and drop it half-way."""
    reader, writer = await _open(listener)
    if not listener.implicit_tls:
        await _to_plain_starttls(listener, reader, writer)
    writer.write(_HELLO[: len(_HELLO) // 2])
    await writer.drain()
    await _close(writer)


async def mid_command(listener: Listener) -> None:
    """A session that closes in the middle of a command (or of a TLS record on 465/993)."""
    reader, writer = await _open(listener)
    if listener.implicit_tls:
        writer.write(_HELLO)  # the whole ClientHello, then gone before the server's answer
    elif listener.protocol == "smtp":
        await _greeting(reader)
        writer.write(b"EHLO probe.example\r\nMAIL FROM:<someone@exa")
    else:
        await _greeting(reader)
        writer.write(b"a1 LOGIN {20}\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readline(), _TIMEOUT)  # + Ready for literal data
        writer.write(b"half-a-lit")
    await writer.drain()
    await _close(writer)


async def banner_then_close(listener: Listener) -> None:
    """Reads the greeting (or completes nothing on implicit TLS), then closes."""
    reader, writer = await _open(listener)
    if not listener.implicit_tls:
        await _greeting(reader)
    await _close(writer)


PROBES: tuple[Probe, ...] = (
    connect_then_close, connect_then_reset, half_open, tls_abort, mid_command,
    banner_then_close,
)


async def drop_many(listener: Listener, count: int, *, concurrency: int = 8) -> list[str]:
    """Opens and drops ``count`` connections from another thread (its own event loop, as
    an outside client: the server sees the client's moves at real, unsynchronised times),
    cycling through :data:`PROBES`.

    Returns the failures seen on the client side (a refusal at connect time is one: the
    server must never consider the address over its limit when every earlier connection
    is gone).
    """
    return await asyncio.to_thread(asyncio.run, _drop_many(listener, count, concurrency))


async def _drop_many(listener: Listener, count: int, concurrency: int) -> list[str]:
    failures: list[str] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            probe = PROBES[i % len(PROBES)]
            try:
                await probe(listener)
            except (OSError, AssertionError, TimeoutError, asyncio.IncompleteReadError) as exc:
                failures.append(f"{listener.name} {probe.__name__}: {exc!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


# -- the gateway side ------------------------------------------------------------------------


def _loops() -> dict[str, Callable[[Coroutine[Any, Any, None]], None]]:
    loops: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run}
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a test dependency
        return loops
    loops["uvloop"] = uvloop.run
    return loops


LOOPS = _loops()


def run_with_gateway(
    tmp_path: Path, loop: str, scenario: Callable[[RunningGateway], Coroutine[Any, Any, None]],
    **sections: dict[str, Any],
) -> None:
    """Starts a gateway (no directory) on the chosen loop and runs ``scenario`` against it."""
    sections.setdefault("directory", {"enabled": False})

    async def main() -> None:
        settings = gateway_settings(tmp_path / "gw", **sections)
        async with running_gateway(settings) as gw:
            await scenario(gw)

    LOOPS[loop](main())



def imap_server(gw: RunningGateway) -> Any:
    """The running :class:`imap.server.ImapServer` of an in-process gateway."""
    for service in gw.gw.services:
        if service.name == "IMAP":
            return service.server  # type: ignore[attr-defined]
    raise AssertionError("the IMAP service is not running")


def listeners(gw: RunningGateway) -> list[Listener]:
    imap = imap_server(gw)
    return [
        Listener("relay", gw.relay_port, "smtp", False),
        Listener("submission", gw.submission_port, "smtp", False),
        Listener("submissions", gw.submissions_port, "smtp", True),
        Listener("imap", imap.port, "imap", False),
        Listener("imaps", imap.tls_port, "imap", True),
    ]


def connection_counts(gw: RunningGateway) -> dict[str, dict[str, int]]:
    """Every listener's live connections per client address (IMAP: both ports together)."""
    counts = {kind: server.connection_counts() for kind, server in gw._smtp().servers.items()}
    counts["imap"] = imap_server(gw).connection_counts()
    return counts


async def wait_all_released(
    gw: RunningGateway, within: float = 15.0
) -> dict[str, dict[str, int]]:
    """The counts once they are all empty, or as they are after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        counts = connection_counts(gw)
        if not any(counts.values()) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


def smtp_session(gw: RunningGateway, kind: str) -> None:
    """A normal session as a mail client (submission) or a peer MTA (relay) opens it."""
    ctx = gw.client_context()
    if kind == "submissions":
        with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=ctx, timeout=30) as c:
            c.ehlo("client.example")
            c.login(gw.demo_address, gw.demo_password)
            assert c.noop()[0] == 250
        return
    port = gw.relay_port if kind == "relay" else gw.submission_port
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example")
        c.starttls(context=ctx)
        c.ehlo("client.example")
        if kind == "submission":
            c.login(gw.demo_address, gw.demo_password)
        assert c.noop()[0] == 250


def imap_session(gw: RunningGateway, implicit: bool) -> None:
    """Log in, select INBOX, log out (STARTTLS or implicit TLS)."""
    imap = imap_server(gw)
    ctx = gw.client_context()
    client: imaplib.IMAP4
    if implicit:
        client = imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=ctx, timeout=30)
    else:
        client = imaplib.IMAP4("127.0.0.1", imap.port, timeout=30)
        client.starttls(ssl_context=ctx)
    client.login(gw.demo_address, gw.demo_password)
    assert client.select("INBOX")[0] == "OK"
    client.logout()
