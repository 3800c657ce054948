"""Dropped connections are released exactly once on every listener (issue: twenty dropped
connections locked an address out of SMTP relay and submission until restart).

A real gateway runs in this process; a thousand connections per listener are opened and
dropped in every way a load balancer's health check, a monitor or a broken peer does it.
Afterwards the per-address counts of every listener are zero and a normal session works.
Each scenario runs on the standard event loop and on uvloop, which ``mssante serve`` uses
(the leak showed only there: uvloop reports the client's FIN before the session's first
step).
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gateway import RunningGateway
from tests.security.conn_probes import (
    LOOPS,
    connection_counts,
    drop_many,
    imap_server,
    imap_session,
    listeners,
    run_with_gateway,
    smtp_session,
    wait_all_released,
)

DROPS_PER_LISTENER = 1000
IDLE_TIMEOUT = 5
NONE_LEFT: dict[str, dict[str, int]] = {
    "relay": {}, "submission": {}, "submissions": {}, "imap": {}}


@pytest.mark.parametrize("loop", LOOPS)
def test_a_thousand_dropped_connections_per_listener_leave_no_trace(
    tmp_path: Path, loop: str
) -> None:
    async def scenario(gw: RunningGateway) -> None:
        refused = 0
        for listener in listeners(gw):
            # Some probes may be refused at the accept: a flood runs ahead of the server,
            # which counts connections the client has already dropped until it reads their
            # end. What must hold is that every one of them is released afterwards.
            refused += len(await drop_many(listener, DROPS_PER_LISTENER))
        assert refused < len(listeners(gw)) * DROPS_PER_LISTENER
        assert await wait_all_released(gw) == NONE_LEFT
        for kind in ("relay", "submission", "submissions"):
            await asyncio.to_thread(smtp_session, gw, kind)
        await asyncio.to_thread(imap_session, gw, False)
        await asyncio.to_thread(imap_session, gw, True)
        assert await wait_all_released(gw) == NONE_LEFT

    run_with_gateway(tmp_path, loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_twenty_one_health_checks_do_not_lock_the_address_out(tmp_path: Path, loop: str) -> None:
    """The reported case: 21 connect-then-close on relay and submission, then a real client."""

    async def scenario(gw: RunningGateway) -> None:
        for port in (gw.relay_port, gw.submission_port):
            for _ in range(21):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
        assert await wait_all_released(gw, 5) == NONE_LEFT
        for kind in ("relay", "submission"):
            await asyncio.to_thread(smtp_session, gw, kind)

    run_with_gateway(tmp_path, loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_half_closed_client_is_closed_by_the_server(tmp_path: Path, loop: str) -> None:
    """FIN from the client before the banner: the server ends its side too, at once."""

    async def scenario(gw: RunningGateway) -> None:
        for listener in listeners(gw):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write_eof()
            started = time.monotonic()
            while await asyncio.wait_for(reader.read(4096), 5):
                pass  # a greeting may come first; then EOF, well before any timeout
            assert time.monotonic() - started < 5, listener.name
            writer.close()
        assert await wait_all_released(gw, 5) == NONE_LEFT

    run_with_gateway(tmp_path, loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_counts_are_exposed_while_connections_are_open(tmp_path: Path, loop: str) -> None:
    """The bookkeeping the tests above rely on does count live connections."""

    async def scenario(gw: RunningGateway) -> None:
        imap = imap_server(gw)
        open_: list[Any] = []
        for listener in listeners(gw):
            if listener.implicit_tls:
                continue  # counted from the TCP accept: see test_conn_handshake.py
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            await asyncio.wait_for(reader.readline(), 10)
            open_.append(writer)
        counts = connection_counts(gw)
        assert counts["relay"] == {"127.0.0.1": 1}
        assert counts["submission"] == {"127.0.0.1": 1}
        assert imap.connection_counts() == {"127.0.0.1": 1}
        for writer in open_:
            writer.close()
        assert await wait_all_released(gw, 5) == NONE_LEFT
        await asyncio.to_thread(smtp_session, gw, "relay")

    run_with_gateway(tmp_path, loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_sessions_the_server_ends_are_released(tmp_path: Path, loop: str) -> None:
    """Idle timeout, too many errors, QUIT and a cut in the middle of DATA, on both
    STARTTLS listeners: each connection is given back to its address."""

    async def scenario(gw: RunningGateway) -> None:
        for port in (gw.relay_port, gw.submission_port):
            # idle timeout: 421 4.4.2, then closed
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            rest = await asyncio.wait_for(reader.read(), IDLE_TIMEOUT + 10)
            assert rest.startswith(b"421 4.4.2"), rest
            writer.close()
            # too many errors
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            writer.write(b"BOGUS\r\n" * 3)
            rest = await asyncio.wait_for(reader.read(), 10)
            assert b"421 4.7.0" in rest, rest
            writer.close()
            # QUIT
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            writer.write(b"QUIT\r\n")
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"221")
            writer.close()
        # a submission cut in the middle of DATA, after STARTTLS and AUTH
        ctx = gw.client_context()
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.submissions_port, ssl=ctx)
        await reader.readline()
        auth = base64.b64encode(f"\0{gw.demo_address}\0{gw.demo_password}".encode()).decode()
        for line in ("EHLO client.example", f"AUTH PLAIN {auth}",
                     f"MAIL FROM:<{gw.demo_address}>", f"RCPT TO:<{gw.demo_address}>", "DATA"):
            writer.write(line.encode() + b"\r\n")
            while (reply := await asyncio.wait_for(reader.readline(), 10))[3:4] == b"-":
                pass
            assert reply[:1] in (b"2", b"3"), (line, reply)
        writer.write(b"Subject: cut\r\n\r\nhalf a bod")
        await writer.drain()
        writer.transport.abort()
        assert await wait_all_released(gw, 5) == NONE_LEFT

    # The idle timer also runs while the server checks the AUTH password (argon2): 1 s was
    # shorter than that check on a loaded machine (two test workers beside other work), and
    # the session under AUTH was ended with 421 4.4.2.
    run_with_gateway(tmp_path, loop, scenario,
                     smtp={"idle_timeout": IDLE_TIMEOUT, "max_bad_commands": 3})
