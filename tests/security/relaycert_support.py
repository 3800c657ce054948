"""Shared helpers of the relay certificate and sender binding attacks (``test_relaycert_*``).

A real gateway (directory off, to start fast) whose trust anchor is the shared development
PKI, driven over its relay port by :mod:`smtplib` presenting real client certificates.
"""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from trustspace.pki import IssuedFiles

PEER_DOMAIN = "hopital-b.mssante.test"
PEER_SENDER = f"secretariat@{PEER_DOMAIN}"


@asynccontextmanager
async def relay_gateway(
    tmp_path: Path, dev_pki: DevPkiBundle, **sections: Any
) -> AsyncIterator[RunningGateway]:
    """A running gateway trusting the dev PKI (with its CRL); extra settings sections."""
    sections.setdefault("directory", {"enabled": False})
    settings = gateway_settings(
        tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True), **sections
    )
    async with running_gateway(settings) as running:
        yield running


def message(sender: str, to: str, subject: str, *, from_header: str | None = None) -> bytes:
    author = from_header if from_header is not None else sender
    return (
        f"From: <{author}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@{PEER_DOMAIN}>\r\n"
        "Date: Mon, 18 Mar 2024 10:00:00 +0100\r\n\r\nCompte rendu joint.\r\n"
    ).encode()


@dataclass
class Exchange:
    """The replies of one relay transaction, stopping at the first refusal."""

    mail: tuple[int, bytes]
    rcpt: tuple[int, bytes] | None = None
    data: tuple[int, bytes] | None = None

    @property
    def last(self) -> tuple[int, bytes]:
        for reply in (self.data, self.rcpt, self.mail):
            if reply is not None:
                return reply
        raise AssertionError("no reply")


def relay(
    gw: RunningGateway, pki: DevPkiBundle, identity: IssuedFiles, sender: str, rcpt: str,
    raw: bytes,
) -> Exchange:
    """MAIL, RCPT and DATA over STARTTLS with ``identity`` as client certificate."""
    with smtplib.SMTP("127.0.0.1", gw.relay_port, timeout=30,
                      local_hostname="mx.hopital-b") as client:
        client.starttls(context=pki.client_context(identity, with_crl=True))
        client.ehlo()
        out = Exchange(mail=client.mail(sender))
        if out.mail[0] != 250:
            return out
        out.rcpt = client.rcpt(rcpt)
        if out.rcpt[0] != 250:
            return out
        out.data = client.data(raw)
        return out


def refused_5_7_1(reply: tuple[int, bytes], *phrases: str) -> None:
    """Asserts ``550 5.7.1`` and that the sentence says each of ``phrases``."""
    code, text = reply
    assert code == 550, reply
    assert text.startswith(b"5.7.1 "), reply
    for phrase in phrases:
        assert phrase.encode() in text, (phrase, text)
