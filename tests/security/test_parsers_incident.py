"""Item 14: whatever goes wrong inside a session, the client never reads a Python exception.

A fault the code did not foresee (here a damaged database: a table renamed behind the
gateway's back, as a botched manual repair or a half-applied migration would leave it) must
give the client ``451 4.3.0`` (SMTP) or ``NO [SERVERBUG]`` (IMAP) with an incident id, the
session going on, and the log the traceback under that same id: the operator can find it
from what the user reports, and the client learns nothing of the internals.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import smtplib
import sqlite3

import pytest

from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(90)

SMTP_INCIDENT = re.compile(
    rb"^4\.3\.0 Internal error \(incident ([0-9a-f]{12})\); the command was not carried out, "
    rb"please try again later$"
)
IMAP_INCIDENT = re.compile(
    rb"^\[SERVERBUG\] Internal error \(incident ([0-9a-f]{12})\); the command was not "
    rb"carried out$"
)
LEAKS = (b"Error:", b"OperationalError", b"sqlite", b"Traceback", b"no such table")


def damage(gateway: RunningGateway, table: str) -> None:
    """Renames ``table`` in the gateway's SQLite file from another connection."""
    path = gateway.settings.data_dir / "mssante.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_damaged")


def repair(gateway: RunningGateway, table: str) -> None:
    """Undoes :func:`damage`, so that the gateway stops as usual."""
    path = gateway.settings.data_dir / "mssante.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"ALTER TABLE {table}_damaged RENAME TO {table}")


def incident_logged(caplog: pytest.LogCaptureFixture, incident: str) -> logging.LogRecord:
    [record] = [r for r in caplog.records if incident in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    return record


async def test_smtp_internal_error_is_451_with_incident_id(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    def run() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context())
            client.login(gateway.demo_address, gateway.demo_password)
            damage(gateway, "accounts")
            try:
                # MAIL reads the sender's send-as rights from the damaged table
                replies = [client.mail(gateway.demo_address), client.noop()]
            finally:
                repair(gateway, "accounts")
            return replies

    with caplog.at_level(logging.ERROR):
        replies = await asyncio.to_thread(run)
    (code, text), noop = replies
    assert code == 451, replies
    assert not any(leak in text for leak in LEAKS), text
    match = SMTP_INCIDENT.match(text)
    assert match, text
    incident_logged(caplog, match.group(1).decode())
    assert noop[0] == 250  # the session goes on, and the failure was not counted as a bad
    # command (aiosmtpd's 500 would have been)


def _imap_port(gateway: RunningGateway) -> int:
    for service in gateway.gw.services:
        if service.name == "IMAP":
            return int(service.server.tls_port)  # type: ignore[attr-defined]
    raise AssertionError("the IMAP service is not running")


async def test_imap_internal_error_is_no_serverbug_with_incident_id(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    port = _imap_port(gateway)

    def run() -> tuple[tuple[str, list[bytes]], str, str]:
        with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=gateway.client_context()) as client:
            client.login(gateway.demo_address, gateway.demo_password)
            damage(gateway, "folders")
            try:
                tag = client._new_tag().decode()  # noqa: SLF001 - read the raw tagged reply
                client.send(f"{tag} SELECT INBOX\r\n".encode())
                while True:
                    line = client.readline()
                    if not line or line.startswith(tag.encode()):
                        break
            finally:
                repair(gateway, "folders")
            status = client.noop()[0]  # the session goes on
            client.logout()
            return (line.split(b" ", 1)[1].split(b" ", 1)[0].decode(),
                    [line.split(b" ", 2)[2].rstrip(b"\r\n")]), status, tag

    with caplog.at_level(logging.ERROR):
        (status, [text]), noop, _tag = await asyncio.to_thread(run)
    assert status == "NO", text
    assert not any(leak in text for leak in LEAKS), text
    match = IMAP_INCIDENT.match(text)
    assert match, text
    incident_logged(caplog, match.group(1).decode())
    assert noop == "OK"
