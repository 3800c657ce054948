"""RFC 3516 BINARY with imaplib: decoded parts, sizes, partials, literal8 APPEND."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import quopri
import re
import socket
import ssl

from tests.fixtures.imap import ALICE, ImapEnv

PAYLOAD = bytes(range(256)) * 40  # every octet value, NUL included
TEXT = "Résultat d'analyse: glycémie à jeun normale.\r\n".encode() * 3


def _mixed(cte_third: str = "x-uuencode") -> bytes:
    b64 = base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
    qp = quopri.encodestring(TEXT)
    return (
        b"From: bob@mssante.test\r\nTo: alice@mssante.test\r\nSubject: binary\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp + b"\r\n"
        b"--B\r\nContent-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
        b"Content-Transfer-Encoding: BASE64 (encoded)\r\n\r\n" + b64 + b"\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: " + cte_third.encode() + b"\r\n\r\nbegin 644 x\r\n`\r\nend\r\n"
        b"--B--\r\n"
    )


def _login(env: ImapEnv) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(), timeout=10)
    imap.login(ALICE, env.alice_password)
    return imap


async def test_binary_decodes_base64_and_qp_with_sizes_and_partials(imap_env: ImapEnv) -> None:
    await imap_env.deliver(_mixed())

    def run() -> None:
        imap = _login(imap_env)
        assert b" BINARY " in imap.capability()[1][0] + b" "
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])")
        assert typ == "OK"
        head = data[0][0]
        assert b"BINARY[2] ~{%d}" % len(PAYLOAD) in head  # NUL inside: literal8
        assert data[0][1] == PAYLOAD
        assert b"BINARY.SIZE[2] %d" % len(PAYLOAD) in data[1]
        assert b"BINARY.SIZE[1] %d" % len(TEXT) in data[1]
        typ, data = imap.fetch("1", "(FLAGS)")
        assert b"\\Seen" not in data[0]  # PEEK left it unread
        typ, data = imap.fetch("1", "(BINARY[1] BINARY[2]<257.10>)")
        assert typ == "OK"
        assert data[0][1] == TEXT
        assert b"BINARY[2]<257> {10}" in data[1][0]
        assert data[1][1] == PAYLOAD[257:267]
        typ, data = imap.fetch("1", "(FLAGS)")
        assert b"\\Seen" in data[0]  # non-PEEK BINARY sets \Seen (RFC 3516 §4.2)
        typ, data = imap.fetch("1", "(BINARY.PEEK[])")
        assert data[0][1].startswith(b"From: bob@")
        imap.logout()
    await asyncio.to_thread(run)


async def test_unknown_transfer_encoding_is_no_unknown_cte(imap_env: ImapEnv) -> None:
    await imap_env.deliver(_mixed())

    def run() -> None:
        imap = _login(imap_env)
        imap.select("INBOX")
        typ, data = imap._simple_command("FETCH", "1", "(BINARY.PEEK[3])")  # type: ignore[attr-defined]
        assert typ == "NO"
        assert b"[UNKNOWN-CTE]" in data[0] and b"x-uuencode" in data[0]
        typ, data = imap.fetch("1", "(BODY.PEEK[3])")  # the raw part is still there
        assert typ == "OK" and b"begin 644" in data[0][1]
        imap.logout()
    await asyncio.to_thread(run)


async def test_append_literal8_then_binary_fetch(imap_env: ImapEnv) -> None:
    body = b"\x00\x01binary\x00data\xff\r\n"
    raw = (b"From: alice@mssante.test\r\nSubject: raw\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
           b"\r\n" + body)

    def run() -> None:
        ctx = imap_env.client_ssl()
        with socket.create_connection(("127.0.0.1", imap_env.tls_port), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            f = t.makefile("rb")
            f.readline()
            t.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), imap_env.alice_password.encode()))
            _until(f, b"a ")
            t.sendall(b"b APPEND Drafts ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
            line = _until(f, b"b ")
            assert line.startswith(b"b OK [APPENDUID"), line
            t.sendall(b"c SELECT Drafts\r\n")
            _until(f, b"c ")
            t.sendall(b"d FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n")
            first = f.readline()
            m = re.search(rb"BINARY\[1\] ~\{(\d+)\}\r\n$", first)
            assert m is not None, first
            assert f.read(int(m.group(1))) == body
            rest = _until(f, b"d ")
            assert rest.startswith(b"d OK")
    await asyncio.to_thread(run)


def _until(f: object, tag: bytes) -> bytes:
    while True:
        line = f.readline()  # type: ignore[attr-defined]
        if not line:
            raise ssl.SSLError("connection closed")
        if line.startswith(tag):
            return bytes(line)
