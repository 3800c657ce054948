"""Client-given identities reach the logs capped and escaped.

Before: a failed IMAP LOGIN logged the name as sent, at any length (a 60,000-octet literal
went into one log line), and control characters, Unicode line separators and
bidirectional overrides went through as they were, so a client could forge what an
operator reads in a terminal or a collector splitting on U+2028.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import ssl
import time

import pytest

from gateway.logs import CLIENT_TEXT_LIMIT, JsonFormatter, KeyValueFormatter
from tests.fixtures.gateway import ServeProcess

pytestmark = pytest.mark.timeout(90)

FORGED = "\r\nts=2026-01-01T00:00:00.000Z level=info logger=mssante.imap event=imap_login"
HOSTILE = (
    "x@mssante.test fake=1 \"quoted\"" + FORGED + "\x1b[31mred\x1b[0m\u2028"
    "\u2029\u202eevil\x85\x7f" + "A" * 3000
)
BAD_CHARS = ("\x1b", "\u2028", "\u2029", "\u202e", "\x85", "\x7f", "\x00")


def _imap_login_literal(port: int, ca_file: str, username: bytes) -> bytes:
    """LOGIN with the user name as a synchronising literal; returns the server's replies."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.recv(4096)  # greeting
        tls.sendall(b"a1 LOGIN {%d}\r\n" % len(username))
        assert tls.recv(4096).startswith(b"+")
        tls.sendall(username + b" wrong-password\r\n")
        reply = b""
        while b"a1 " not in reply:
            chunk = tls.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


async def test_failed_imap_login_name_is_capped_and_escaped(
    serve_process: ServeProcess,
) -> None:
    proc = serve_process
    await asyncio.to_thread(proc.start)
    port = proc.ports["MSSANTE_IMAP_TLS_PORT"]
    reply = await asyncio.to_thread(
        _imap_login_literal, port, str(proc.ca_file), HOSTILE.encode("utf-8"))
    assert b"a1 NO" in reply, reply
    out = proc.data_dir / f"serve-{proc.starts}.out"
    deadline = time.monotonic() + 10
    while "imap_auth_failed" not in out.read_text(errors="replace"):
        assert time.monotonic() < deadline, "no imap_auth_failed line was logged"
        await asyncio.sleep(0.1)
    proc.kill()
    text = out.read_bytes().decode("utf-8", "replace")
    lines = [ln for ln in text.split("\n") if "imap_auth_failed" in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    # One line, nothing forged after it, no control or separator characters anywhere.
    assert "event=imap_login" not in text.split("imap_auth_failed", 1)[1].split("\n", 1)[0]
    for bad in BAD_CHARS:
        assert bad not in text, repr(bad)
    for ln in text.split("\n"):
        assert "event=imap_login " not in ln or ln.startswith("ts=") and "user=" in ln, ln
    # The name is one quoted value, cut to the limit: no "fake" field, no 3000 A's.
    assert " fake=1" not in line.replace('\\"', "").split("login=", 1)[0]
    assert "A" * (CLIENT_TEXT_LIMIT + 1) not in line
    assert len(line) < 600, len(line)
    assert 'login="x@mssante.test fake=1' in line, line


def _format(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    return formatter.format(record)


@pytest.mark.parametrize("formatter", [KeyValueFormatter(), JsonFormatter()])
def test_formatters_escape_every_value_and_cap_client_identities(
    formatter: logging.Formatter,
) -> None:
    record = logging.LogRecord("mssante.imap", logging.INFO, __file__, 1, "imap_auth_failed",
                               None, None)
    record.fields = {"login": HOSTILE + "\x00", "authzid": HOSTILE, "peer": "127.0.0.1:1\nforged",
                     "detail": "a\u2028b"}
    line = _format(formatter, record)
    assert "\n" not in line and "\r" not in line
    for bad in BAD_CHARS:
        assert bad not in line, repr(bad)
    assert "A" * (CLIENT_TEXT_LIMIT + 1) not in line
    if isinstance(formatter, JsonFormatter):
        doc = json.loads(line)
        assert doc["login"].startswith("x@mssante.test fake=1")
        assert len(doc["login"]) <= CLIENT_TEXT_LIMIT + 40


def test_key_value_arguments_cannot_add_fields() -> None:
    """Modules that log ``event=… key=%s`` get each argument quoted like a field."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    log = logging.getLogger("mssante.test-misc-logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("event=smtp_auth kind=%s peer=%s login=%s", "submission", "127.0.0.1",
                    "demo@mssante.test level=error event=forged\nts=x")
    finally:
        log.removeHandler(handler)
    line = stream.getvalue()
    assert line.count("\n") == 1, line
    assert 'login="demo@mssante.test level=error event=forged' in line, line
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
    assert "forged" not in outside and outside.count("level=") == 1, line
    assert line.split(" ")[3] == "event=smtp_auth", line
