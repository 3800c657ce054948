"""Literals before authentication (issue: an unauthenticated client held 64 MiB per connection).

Before login only short literals are accepted (Dovecot allows 8 KiB for a login): a larger
synchronising literal is refused with ``NO [TOOBIG]`` and no ``+`` invitation, a larger
non-synchronising one ends the connection with ``* BYE [TOOBIG]``. Runs against the real IMAP
listeners on loopback with raw sockets, as an attacker would.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from tests.fixtures.imap import ALICE, ImapEnv

PREAUTH_MAX_LITERAL = 8192
"""The largest literal accepted before login, as Dovecot allows for a login."""


def _recv_until(sock: socket.socket, marker: bytes, limit: float = 10.0) -> bytes:
    """Reads until ``marker`` appears or the peer closes."""
    sock.settimeout(limit)
    data = b""
    while marker not in data:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _plain(env: ImapEnv) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    assert _recv_until(sock, b"\r\n").startswith(b"* OK")
    return sock


def _tls(env: ImapEnv) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", env.tls_port), timeout=10)
    tls = env.client_ssl().wrap_socket(sock, server_hostname="127.0.0.1")
    assert _recv_until(tls, b"\r\n").startswith(b"* OK")
    return tls


async def test_huge_sync_literal_before_login_is_refused_without_invitation(
    imap_env: ImapEnv,
) -> None:
    def run() -> tuple[bytes, bytes]:
        sock = _plain(imap_env)
        sock.sendall(b"a LOGIN {60000000}\r\n")
        refused = _recv_until(sock, b"a ")
        refused += _recv_until(sock, b"\r\n", 2.0) if not refused.endswith(b"\r\n") else b""
        # The connection is still in step: the next command is answered.
        sock.sendall(b"b NOOP\r\n")
        after = _recv_until(sock, b"b OK")
        sock.close()
        return refused, after
    refused, after = await asyncio.to_thread(run)
    assert b"+ " not in refused
    assert refused.startswith(b"a NO [TOOBIG]"), refused
    assert str(PREAUTH_MAX_LITERAL).encode() in refused
    assert b"b OK" in after


async def test_literal_just_over_the_login_limit_is_refused_on_tls_port(
    imap_env: ImapEnv,
) -> None:
    def run() -> bytes:
        tls = _tls(imap_env)
        tls.sendall(b"a LOGIN {%d}\r\n" % (PREAUTH_MAX_LITERAL + 1))
        reply = _recv_until(tls, b"\r\n")
        tls.close()
        return reply
    reply = await asyncio.to_thread(run)
    assert reply.startswith(b"a NO [TOOBIG]"), reply


async def test_short_literals_still_log_in(imap_env: ImapEnv) -> None:
    def run() -> bytes:
        tls = _tls(imap_env)
        user, password = ALICE.encode(), imap_env.alice_password.encode()
        tls.sendall(b"a LOGIN {%d}\r\n" % len(user))
        assert _recv_until(tls, b"\r\n").startswith(b"+ ")
        tls.sendall(user + b" {%d+}\r\n" % len(password) + password + b"\r\n")
        reply = _recv_until(tls, b"a ")
        reply += _recv_until(tls, b"\r\n")
        tls.close()
        return reply
    reply = await asyncio.to_thread(run)
    assert b"a OK" in reply, reply


async def test_huge_non_sync_literal_before_login_closes_with_bye(imap_env: ImapEnv) -> None:
    def run() -> tuple[bytes, bool]:
        sock = _plain(imap_env)
        sock.sendall(b"a LOGIN {60000000+}\r\n" + b"x" * 65536)
        reply = _recv_until(sock, b"\r\n")
        sock.settimeout(10)
        try:
            closed = sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        sock.close()
        return reply, closed
    reply, closed = await asyncio.to_thread(run)
    assert reply.startswith(b"* BYE [TOOBIG]"), reply
    assert closed


async def test_large_append_literal_still_accepted_after_login(imap_env: ImapEnv) -> None:
    body = (b"From: alice@mssante.test\r\nSubject: big\r\n\r\n"
            + b"0123456789abcdef\r\n" * (2 * 1024 * 1024 // 18))

    def run() -> bytes:
        tls = _tls(imap_env)
        tls.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), imap_env.alice_password.encode()))
        assert b"a OK" in _recv_until(tls, b"a ") + _recv_until(tls, b"\r\n")
        tls.sendall(b"b APPEND INBOX {%d}\r\n" % len(body))
        assert _recv_until(tls, b"\r\n").startswith(b"+ ")
        tls.sendall(body + b"\r\n")
        reply = _recv_until(tls, b"b ")
        reply += _recv_until(tls, b"\r\n")
        tls.close()
        return reply
    reply = await asyncio.to_thread(run)
    assert b"b OK [APPENDUID" in reply, reply


async def test_large_literal_outside_append_is_refused_after_login(imap_env: ImapEnv) -> None:
    # Only APPEND carries a message; elsewhere a literal is held to the line length.
    def run() -> tuple[bytes, bytes]:
        tls = _tls(imap_env)
        tls.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), imap_env.alice_password.encode()))
        assert b"a OK" in _recv_until(tls, b"a ") + _recv_until(tls, b"\r\n")
        tls.sendall(b"b SELECT INBOX\r\n")
        assert b"b OK" in _recv_until(tls, b"b OK")
        tls.sendall(b"c SEARCH TEXT {60000000}\r\n")
        refused = _recv_until(tls, b"\r\n")
        tls.sendall(b"d NOOP\r\n")
        after = _recv_until(tls, b"d OK")
        tls.close()
        return refused, after
    refused, after = await asyncio.to_thread(run)
    assert refused.startswith(b"c NO [TOOBIG]") and b"outside APPEND" in refused, refused
    assert b"d OK" in after


async def test_overlong_authenticate_response_is_refused_clearly(imap_env: ImapEnv) -> None:
    def run() -> bytes:
        tls = _tls(imap_env)
        tls.sendall(b"a AUTHENTICATE PLAIN\r\n")
        assert _recv_until(tls, b"\r\n").startswith(b"+")
        tls.sendall(b"A" * (imap_env.settings.imap.max_line_length + 100) + b"\r\n")
        reply = _recv_until(tls, b"\r\n")
        tls.close()
        return reply
    reply = await asyncio.to_thread(run)
    assert reply.startswith(b"* BYE [TOOBIG] Line too long"), reply
