"""Session basics with Python's imaplib: greeting, TLS, authentication, limits."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import socket
import ssl

import pytest

from tests.fixtures.imap import ALICE, ImapEnv


def _plain(env: ImapEnv) -> imaplib.IMAP4:
    return imaplib.IMAP4("127.0.0.1", env.port, timeout=10)


async def test_greeting_before_tls_hides_auth_and_refuses_login(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = _plain(imap_env)
        caps = imap.capabilities
        assert "STARTTLS" in caps and "LOGINDISABLED" in caps
        assert not any(c.startswith("AUTH=") for c in caps)
        typ, data = imap._simple_command("LOGIN", ALICE, imap_env.alice_password)  # type: ignore[attr-defined]
        assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    await asyncio.to_thread(run)


async def test_starttls_then_login_and_select(imap_env: ImapEnv) -> None:
    def run() -> list[str]:
        imap = _plain(imap_env)
        imap.starttls(imap_env.client_ssl())
        caps = imap.capabilities
        assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
        imap.login(ALICE, imap_env.alice_password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"0"]
        imap.logout()
        return list(caps)
    await asyncio.to_thread(run)


async def test_implicit_tls_authenticate_plain_with_initial_response(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(), timeout=10)
        token = base64.b64encode(f"\0{ALICE}\0{imap_env.alice_password}".encode()).decode()
        typ, data = imap._simple_command("AUTHENTICATE", "PLAIN", token)  # type: ignore[attr-defined]
        assert typ == "OK", data
        imap.state = "AUTH"
        typ, data = imap.list()
        names = b"\n".join(data)
        for folder in (b"INBOX", b"Sent", b"Drafts", b"Trash"):
            assert folder in names
        assert b"\\Sent" in names and b"\\Trash" in names and b"\\Noselect" not in names
        imap.logout()
    await asyncio.to_thread(run)


async def test_wrong_password_is_authenticationfailed(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(), timeout=10)
        imap.login(ALICE, "not-the-password")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        await asyncio.to_thread(run)


async def test_external_with_client_certificate(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(cert=True), timeout=10)
        typ, data = imap._simple_command("AUTHENTICATE", "EXTERNAL", "=")  # type: ignore[attr-defined]
        assert typ == "OK", data
        imap.state = "AUTH"
        typ, data = imap.select("INBOX")
        assert typ == "OK"
    await asyncio.to_thread(run)


async def test_external_without_certificate_is_refused(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(), timeout=10)
        typ, data = imap._simple_command("AUTHENTICATE", "EXTERNAL", "=")  # type: ignore[attr-defined]
        assert typ == "NO" and b"[AUTHENTICATIONFAILED]" in data[0]
        assert b"client certificate" in data[0]
    await asyncio.to_thread(run)


async def test_commands_need_authentication(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                 ssl_context=imap_env.client_ssl(), timeout=10)
        imap.state = "AUTH"
        imap.select("INBOX")
    with pytest.raises(imaplib.IMAP4.error, match="Log in first"):
        await asyncio.to_thread(run)


def _raw_tls(env: ImapEnv) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", env.tls_port), timeout=10)
    tls = env.client_ssl().wrap_socket(sock, server_hostname="127.0.0.1")
    tls.recv(4096)
    return tls


def _exchange(sock: ssl.SSLSocket, line: bytes) -> bytes:
    sock.sendall(line)
    data = b""
    while not data.endswith(b"\r\n") or b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


async def test_bad_commands_then_bye_and_oversized_line(imap_env: ImapEnv) -> None:
    def run() -> tuple[bytes, bytes]:
        sock = _raw_tls(imap_env)
        replies = b""
        for i in range(imap_env.settings.imap.max_bad_commands):
            replies += _exchange(sock, b"a%d FROBNICATE\r\n" % i)
        sock2 = _raw_tls(imap_env)
        sock2.sendall(b"x LOGIN " + b"a" * (imap_env.settings.imap.max_line_length + 10)
                      + b"\r\n")
        big = sock2.recv(4096)
        return replies, big
    replies, big = await asyncio.to_thread(run)
    assert b"a0 BAD" in replies
    assert b"* BYE" in replies and b"Too many invalid commands" in replies
    assert big.startswith(b"* BYE [TOOBIG]")


async def test_id_is_answered_and_traced(imap_env: ImapEnv) -> None:
    def run() -> bytes:
        sock = _raw_tls(imap_env)
        return _exchange(sock, b'a ID ("name" "Thunderbird" "version" "128.0")\r\n')
    reply = await asyncio.to_thread(run)
    assert b'* ID ("name" "mssante-gateway"' in reply and b"a OK" in reply
    from storage import traces

    db = imap_env.gateway.db
    assert db is not None
    async with db.read() as conn:
        recent = await traces.recent(conn)
    assert any(t.event == "client_id" and t.detail.get("name") == "Thunderbird" for t in recent)


async def test_stop_says_bye_to_open_sessions(imap_env: ImapEnv) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", imap_env.tls_port, ssl=imap_env.client_ssl(), server_hostname="127.0.0.1")
    await reader.readline()
    await imap_env.service.stop(0)
    data = await asyncio.wait_for(reader.read(), 5)
    assert b"* BYE" in data
    writer.close()
    del loop
