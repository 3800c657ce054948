"""The counters of ``/metrics`` agree with what clients did: messages accepted and refused,
authentications by outcome, IMAP commands, connections — scraped before and after real
SMTP and IMAP traffic, compared as differences (the counters are process-wide)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(tmp_path / "gw")) as running:
        yield running


async def scrape(gw: RunningGateway) -> dict[Sample, float]:
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    async with httpx.AsyncClient(verify=ctx, timeout=10) as http:
        text = (await http.get(f"https://127.0.0.1:{gw.web_port}/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def delta(before: dict[Sample, float], after: dict[Sample, float], name: str,
          **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def submit(gw: RunningGateway, to: str, n: int) -> None:
    raw = (f"From: {gw.demo_address}\r\nTo: {to}\r\nSubject: metrics {n}\r\n"
           f"Message-ID: <metrics-{n}@mssante.test>\r\n\r\nbonjour\r\n")
    await aiosmtplib.send(raw, sender=gw.demo_address, recipients=[to], hostname="127.0.0.1",
                          port=gw.submission_port, start_tls=True,
                          tls_context=gw.client_context(), username=gw.demo_address,
                          password=gw.demo_password)


async def test_counters_match_the_traffic(gw: RunningGateway) -> None:
    before = await scrape(gw)
    for n in range(5):
        await submit(gw, gw.demo_address, n)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await submit(gw, "someone@gmail.com", 99)  # outside the trust space: 550 5.7.1
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await aiosmtplib.send("Subject: x\r\n\r\nx\r\n", sender=gw.demo_address,
                              recipients=[gw.demo_address], hostname="127.0.0.1",
                              port=gw.submission_port, start_tls=True,
                              tls_context=gw.client_context(), username=gw.demo_address,
                              password="not-the-password")

    imap_service = next(s for s in gw.gw.services if s.name == "IMAP")
    port = imap_service.server.tls_port  # type: ignore[attr-defined]

    def imap_session() -> None:
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=gw.client_context())
        client.login(gw.demo_address, gw.demo_password)
        client.select("INBOX")
        client.fetch("1:*", "(FLAGS)")
        client.logout()

    await asyncio.to_thread(imap_session)
    after = await scrape(gw)

    assert delta(before, after, "mssante_smtp_messages_total", listener="submission",
                 outcome="accepted", code="2.0.0") == 5
    assert delta(before, after, "mssante_smtp_refusals_total", listener="submission",
                 code="5.7.1") == 1
    assert delta(before, after, "mssante_authentications_total", protocol="smtp",
                 method="PLAIN", outcome="success") == 6
    assert delta(before, after, "mssante_authentications_total", protocol="smtp",
                 method="PLAIN", outcome="failure") == 1
    assert delta(before, after, "mssante_authentications_total", protocol="imap",
                 method="LOGIN", outcome="success") == 1
    assert delta(before, after, "mssante_connections_total", protocol="smtp",
                 listener="submission") == 7
    assert delta(before, after, "mssante_connections_total", protocol="imap",
                 listener="imaps") == 1
    assert delta(before, after, "mssante_imap_commands_total", command="SELECT",
                 result="OK") == 1
    assert delta(before, after, "mssante_imap_commands_total", command="LOGIN",
                 result="OK") == 1
    # sessions open now: none of ours is left open
    assert after.get(("mssante_sessions", (("listener", "imaps"), ("protocol", "imap"))),
                     0.0) == before.get(
        ("mssante_sessions", (("listener", "imaps"), ("protocol", "imap"))), 0.0)
