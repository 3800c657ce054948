"""PROXY protocol v2 on the SMTP and IMAP listeners (``[gateway] proxy_protocol_from``):
the client's address given by a listed balancer is the one counted, traced and proved;
nobody else can claim an address; a listed balancer without a valid header is cut off."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.schema import traces
from tests.fixtures.gateway import RunningGateway
from tests.security.conn_probes import LOOPS, connection_counts, imap_server, run_with_gateway
from trustspace.proxy_protocol import (
    MAX_HEADER,
    ProxyHeaderError,
    build_header,
    parse_header,
)

CLIENT = ("203.0.113.7", 40000)
BALANCER = {"gateway": {"proxy_protocol_from": ["127.0.0.1/32"], "proxy_protocol_timeout": 1}}


async def _open(port: int, source: str = "127.0.0.1",
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _smtp_line(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line[3:4] != b"-":
            return line


def test_parse_header_ipv4_ipv6_local_and_refusals() -> None:
    """HAProxy PROXY protocol spec §2.2: signature, version 2, PROXY/LOCAL, families."""
    header = build_header(CLIENT, ("192.0.2.1", 25))
    assert parse_header(header + b"EHLO") is not None
    parsed = parse_header(header)
    assert parsed is not None and parsed.source == CLIENT and parsed.length == len(header)
    six = build_header(("2001:db8::7", 1234), ("2001:db8::1", 993))
    assert parse_header(six) is not None and parse_header(six).source == ("2001:db8::7", 1234)  # type: ignore[union-attr]
    local = header[:12] + bytes([0x20, 0x00]) + b"\x00\x00"
    assert parse_header(local) is not None and parse_header(local).source is None  # type: ignore[union-attr]
    assert parse_header(header[:10]) is None  # incomplete, not refused
    for bad in (b"EHLO me\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                header[:12] + bytes([0x31]) + header[13:],
                header[:14] + (MAX_HEADER).to_bytes(2, "big")):
        with pytest.raises(ProxyHeaderError):
            parse_header(bad)


@pytest.mark.parametrize("loop", LOOPS)
def test_balancer_gives_the_client_address_on_every_listener(tmp_path: Path, loop: str) -> None:
    """SMTP submission (plain and implicit TLS) and IMAP (both ports) count and trace the
    address in the header, not the balancer's."""
    async def scenario(gw: RunningGateway) -> None:
        header = build_header(CLIENT, ("127.0.0.1", gw.submission_port))
        # Plain submission: header, then the SMTP session, with an authentication.
        reader, writer = await _open(gw.submission_port)
        writer.write(header)
        assert (await _smtp_line(reader)).startswith(b"220")
        assert connection_counts(gw)["submission"] == {CLIENT[0]: 1}
        writer.close()
        # Implicit TLS: the header comes before the TLS handshake (and in the same segment).
        ctx = gw.client_context()
        raw = socket.create_connection(("127.0.0.1", gw.submissions_port))
        raw.sendall(header)
        tls = await asyncio.to_thread(ctx.wrap_socket, raw, server_hostname="127.0.0.1")
        assert (await asyncio.to_thread(tls.recv, 512)).startswith(b"220")
        await asyncio.to_thread(tls.sendall, b"EHLO client.example\r\n")
        await asyncio.to_thread(tls.recv, 4096)
        token = base64.b64encode(f"\0{gw.demo_address}\0{gw.demo_password}".encode()).decode()
        await asyncio.to_thread(tls.sendall, f"AUTH PLAIN {token}\r\n".encode())
        assert (await asyncio.to_thread(tls.recv, 512)).startswith(b"235")
        assert connection_counts(gw)["submissions"] == {CLIENT[0]: 1}
        tls.close()
        # IMAP, implicit TLS.
        imap = imap_server(gw)
        raw = socket.create_connection(("127.0.0.1", imap.tls_port))
        raw.sendall(build_header(CLIENT, ("127.0.0.1", imap.tls_port)))
        tls = await asyncio.to_thread(ctx.wrap_socket, raw, server_hostname="127.0.0.1")
        assert (await asyncio.to_thread(tls.recv, 512)).startswith(b"* OK")
        await asyncio.to_thread(
            tls.sendall, f'a LOGIN "{gw.demo_address}" "{gw.demo_password}"\r\n'.encode())
        assert b"a OK" in await asyncio.to_thread(tls.recv, 2048)
        assert imap.connection_counts() == {CLIENT[0]: 1}
        tls.close()
        # IMAP STARTTLS port, plain greeting after the header.
        reader, writer = await _open(imap.port)
        writer.write(build_header(CLIENT, ("127.0.0.1", imap.port)))
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"* OK")
        writer.close()
        assert gw.gw.db is not None
        for _ in range(50):  # the authentication traces name the client's address
            async with gw.gw.db.read() as conn:
                details = json.dumps([[r.service, r.event, r.detail] for r in (await conn.execute(
                    select(traces).where(traces.c.event.like("%auth%")))).all()])
            if details.count(CLIENT[0]) >= 2:
                break
            await asyncio.sleep(0.1)
        assert details.count(CLIENT[0]) >= 2 and "127.0.0.1" not in details, details

    run_with_gateway(tmp_path, loop, scenario, **BALANCER)


@pytest.mark.parametrize("loop", LOOPS)
def test_nobody_else_can_claim_an_address(tmp_path: Path, loop: str) -> None:
    """From an address not listed, a header is not read as one: the session sees the
    connection's own address and the header as a bad command."""
    async def scenario(gw: RunningGateway) -> None:
        reader, writer = await _open(gw.submission_port, source="127.0.0.2")
        assert (await _smtp_line(reader)).startswith(b"220")
        assert connection_counts(gw)["submission"] == {"127.0.0.2": 1}
        writer.write(build_header(CLIENT, ("127.0.0.1", gw.submission_port)) + b"\r\n")
        reply = await _smtp_line(reader)
        assert reply.startswith(b"5"), reply
        assert CLIENT[0] not in connection_counts(gw)["submission"]
        writer.close()

    run_with_gateway(tmp_path, loop, scenario, **BALANCER)


@pytest.mark.parametrize("loop", LOOPS)
def test_listed_balancer_without_a_valid_header_is_cut_off(tmp_path: Path, loop: str) -> None:
    """No fall-back to the balancer's address: a wrong first line, or silence, ends the
    connection before any greeting, and nothing stays counted."""
    async def scenario(gw: RunningGateway) -> None:
        imap = imap_server(gw)
        for port in (gw.submission_port, imap.port):
            reader, writer = await _open(port)
            writer.write(b"EHLO spoof.example\r\n")
            assert await asyncio.wait_for(reader.read(100), 10) == b""
            writer.close()
            reader, writer = await _open(port)  # silence: cut off after the time limit
            assert await asyncio.wait_for(reader.read(100), 10) == b""
            writer.close()
        await asyncio.sleep(0.2)
        assert not any(connection_counts(gw).values())

    run_with_gateway(tmp_path, loop, scenario, **BALANCER)


def test_header_bytes_in_tls_context_are_checked(tmp_path: Path) -> None:
    """A header claiming an address, then a bad TLS handshake: refused as TLS, and the
    connection is not counted afterwards."""
    async def scenario(gw: RunningGateway) -> None:
        raw = socket.create_connection(("127.0.0.1", gw.submissions_port))
        raw.sendall(build_header(CLIENT, ("127.0.0.1", gw.submissions_port)) + b"not tls\r\n")
        raw.settimeout(10)
        with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
            data = raw.recv(100)
            if data == b"":
                raise ConnectionError("closed")
        raw.close()
        await asyncio.sleep(0.3)
        assert connection_counts(gw)["submissions"] == {}

    run_with_gateway(tmp_path, "asyncio", scenario, **BALANCER)
