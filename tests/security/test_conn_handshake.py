"""Connection limits before the handshake (issue: on implicit-TLS ports, connections that
never finished the handshake were not counted per address and were kept 60 s; sessions
that never logged in kept an IMAP connection for the full 1,860 s idle timeout).

Real gateway, real sockets; small timeouts through the settings, generous margins.
"""

from __future__ import annotations

import asyncio
import imaplib
import time
from typing import Any

import pytest

from tests.fixtures.gateway import RunningGateway
from tests.security.conn_probes import (
    LOOPS,
    connection_counts,
    imap_server,
    imap_session,
    run_with_gateway,
    smtp_session,
    wait_all_released,
)

HANDSHAKE_TIMEOUT = 1.0
LIMIT = 5
SETTINGS: dict[str, dict[str, Any]] = {
    "tls": {"handshake_timeout": HANDSHAKE_TIMEOUT},
    "smtp": {"max_connections_per_ip": LIMIT},
    "imap": {"max_connections_per_address": LIMIT, "login_timeout": 1.0},
}
MARGIN = 8.0  # a loaded machine: the server must act within the timeout plus this


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Reads until the server closes; (what it sent, seconds it took)."""
    started = time.monotonic()
    received = b""
    while chunk := await asyncio.wait_for(reader.read(4096), within):
        received += chunk
    return received, time.monotonic() - started


def _ports(gw: RunningGateway, name: str) -> tuple[int, str]:
    if name == "submissions":
        return gw.submissions_port, "submissions"
    return imap_server(gw).tls_port, "imap"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("listener", ["submissions", "imaps"])
def test_silent_implicit_tls_connections_are_counted_then_dropped(
    tmp_path: Any, loop: str, listener: str
) -> None:
    async def scenario(gw: RunningGateway) -> None:
        port, counted_as = _ports(gw, listener)
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(LIMIT)]
        await asyncio.sleep(0.3)
        # counted per address while the handshake has not even started
        assert connection_counts(gw)[counted_as] == {"127.0.0.1": LIMIT}
        # one more from the same address is closed at once, no TLS spent on it
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        received, took = await closed_by_server(reader, 5)
        assert received == b"" and took < 5
        writer.close()
        # the silent ones are dropped once the handshake timeout has passed
        for reader, writer in silent:
            received, took = await closed_by_server(reader, HANDSHAKE_TIMEOUT + MARGIN)
            assert received == b""
            writer.close()
        assert await wait_all_released(gw, 5) == {
            "relay": {}, "submission": {}, "submissions": {}, "imap": {}}
        if listener == "submissions":
            await asyncio.to_thread(smtp_session, gw, "submissions")
        else:
            await asyncio.to_thread(imap_session, gw, True)

    run_with_gateway(tmp_path, loop, scenario, **SETTINGS)


@pytest.mark.parametrize("listener", ["submission", "relay", "imap"])
def test_a_starttls_handshake_that_never_comes_is_dropped(tmp_path: Any, listener: str) -> None:
    async def scenario(gw: RunningGateway) -> None:
        port = {"submission": gw.submission_port, "relay": gw.relay_port,
                "imap": imap_server(gw).port}[listener]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        if listener == "imap":
            writer.write(b"s1 STARTTLS\r\n")
            assert (await reader.readline()).startswith(b"s1 OK")
        else:
            writer.write(b"EHLO client.example\r\n")
            while (await reader.readline())[3:4] == b"-":
                pass
            writer.write(b"STARTTLS\r\n")
            assert (await reader.readline()).startswith(b"220")
        started = time.monotonic()
        await closed_by_server(reader, HANDSHAKE_TIMEOUT + MARGIN)
        assert time.monotonic() - started >= HANDSHAKE_TIMEOUT * 0.9
        writer.close()
        assert await wait_all_released(gw, 5) == {
            "relay": {}, "submission": {}, "submissions": {}, "imap": {}}

    run_with_gateway(tmp_path, "asyncio", scenario, **SETTINGS)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_unauthenticated_imap_session_gets_bye_after_the_login_timeout(
    tmp_path: Any, loop: str
) -> None:
    async def scenario(gw: RunningGateway) -> None:
        imap = imap_server(gw)
        ctx = gw.client_context()
        for port, tls in ((imap.port, None), (imap.tls_port, ctx)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            assert (await reader.readline()).startswith(b"* OK")
            writer.write(b"a1 CAPABILITY\r\n")  # activity resets the timer, then silence
            while not (await reader.readline()).startswith(b"a1 OK"):
                pass
            started = time.monotonic()
            received, _took = await closed_by_server(reader, 1.0 + MARGIN)
            assert time.monotonic() - started >= 0.9
            assert received.startswith(b"* BYE "), received
            assert b"not logged in" in received
            writer.close()
        assert imap.connection_counts() == {}

        # once logged in, the long idle timeout applies
        def logged_in_session_outlives_the_login_timeout() -> None:
            client = imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=ctx, timeout=30)
            client.login(gw.demo_address, gw.demo_password)
            time.sleep(2.5)
            assert client.noop()[0] == "OK"
            client.logout()

        await asyncio.to_thread(logged_in_session_outlives_the_login_timeout)

    run_with_gateway(tmp_path, loop, scenario, **SETTINGS)


def test_the_defaults_are_the_ones_asked_for(tmp_path: Any) -> None:
    from config import load_settings

    settings = load_settings(data_dir=tmp_path, env={})
    assert settings.tls.handshake_timeout == 10.0
    assert settings.imap.login_timeout == 60.0
    assert settings.imap.idle_timeout == 1860.0
