"""``mssante indicators``: a month's figures from a gateway where real messages were sent
(SMTP submission with X-MSS-CODECDA and NOTIFY=SUCCESS, a reading over IMAP that sends
the automatic read receipt), and the refusal of a bad month."""

from __future__ import annotations

import asyncio
import csv
import io
import ssl
from pathlib import Path
from typing import Any

import aiosmtplib
import imapclient
from click.testing import CliRunner
from sqlalchemy import select

from gateway.commands.indicators import command as indicators_command
from gateway.context import CliContext
from mail.headers import codecda
from mail.indicators import month_range
from storage.schema import traces
from storage.types import utcnow
from tests.fixtures.gateway import RunningGateway


def test_codecda_code() -> None:
    assert codecda(b"X-MSS-CODECDA: 11488-4^Note de consultation^LOINC\r\n\r\nb") == "11488-4"
    assert codecda(b"x-mss-codecda:  SYNTH \r\n\r\n") == "SYNTH"
    assert codecda(b"X-MSS-CODECDA: Mme Dupont nee le 1/2/1960\r\n\r\n") == "other"
    assert codecda(b"Subject: x\r\n\r\nX-MSS-CODECDA: 11488-4\r\n") is None


def test_month_range() -> None:
    start, end = month_range("2026-12")
    assert (start.year, start.month, end.year, end.month) == (2026, 12, 2027, 1)


def _cli(gw: RunningGateway, *args: str) -> Any:
    obj = CliContext(config_file=None, data_dir=None, _settings=gw.settings)
    return CliRunner().invoke(indicators_command, list(args), obj=obj)


async def _send(gw: RunningGateway, login: str, password: str, to: str, n: int,
                code: str | None) -> None:
    extra = f"X-MSS-CODECDA: {code}\r\n" if code else ""
    raw = (f"From: <{login}>\r\nTo: <{to}>\r\nSubject: cr {n}\r\n"
           f"Message-ID: <ind{n}@mssante.test>\r\n"
           f"Disposition-Notification-To: <{login}>\r\n{extra}\r\nbonjour\r\n").encode()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.submission_port, start_tls=True,
                           tls_context=ssl.create_default_context(cafile=str(gw.ca_file)))
    await smtp.connect()
    try:
        await smtp.login(login, password)
        await smtp.mail(login)
        await smtp.rcpt(to, options=["NOTIFY=SUCCESS"])
        await smtp.data(raw)
    finally:
        await smtp.quit()


def _read_all(gw: RunningGateway, login: str, password: str) -> None:
    imap = next(s for s in gw.gw.services if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imapclient.IMAPClient("127.0.0.1", port=imap.server.tls_port,  # type: ignore[attr-defined]
                               ssl=True, ssl_context=ctx, timeout=10) as client:
        client.login(login, password)
        client.select_folder("INBOX")
        client.fetch(client.search(["ALL"]), ["BODY[]"])


async def _wait_kind(gw: RunningGateway, ref: str, kind: str) -> None:
    async with asyncio.timeout(20):
        while True:
            if kind in {p["kind"] for p in await gw.proofs_for(ref)}:
                return
            await asyncio.sleep(0.1)


async def test_indicators_of_a_month_with_real_traffic(gateway: RunningGateway,
                                                       tmp_path: Path) -> None:
    bob, bob_pw = await gateway.add_mailbox("bob")
    await gateway.add_mailbox("labo", type="APP", name="Laboratoire", structure_id="330000000")
    me, pw = gateway.demo_address, gateway.demo_password
    for n, code in enumerate(("11488-4^Note^LOINC", "11488-4", "60591-5", None)):
        await _send(gateway, me, pw, bob, n, code)
    await asyncio.to_thread(_read_all, gateway, bob, bob_pw)
    await _wait_kind(gateway, "<ind3@mssante.test>", "mdn-sent")
    await _wait_kind(gateway, "<ind3@mssante.test>", "dsn-sent")
    # Traces are written in batches a moment after the login: wait for the IMAP one.
    assert gateway.gw.db is not None
    async with asyncio.timeout(20):
        while True:
            async with gateway.gw.db.read() as conn:
                found = (await conn.execute(select(traces.c.id).where(
                    traces.c.service == "imap", traces.c.event == "auth_success"))).first()
            if found is not None:
                break
            await asyncio.sleep(0.1)
    month = utcnow().strftime("%Y-%m")
    out = tmp_path / "indicators.csv"
    result = await asyncio.to_thread(_cli, gateway, "--month", month, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text()
    print(text)
    table = {(r["indicator"], r["dimension"]): float(r["value"])
             for r in csv.DictReader(io.StringIO(text))}
    assert all(r["month"] == month for r in csv.DictReader(io.StringIO(text)))
    assert table[("active_mailboxes", "PER")] >= 2
    assert table[("active_mailboxes", "APP")] == 1
    assert table[("messages_sent", "submitted_by_users")] == 4
    assert table[("messages_codecda", "11488-4")] == 2
    assert table[("messages_codecda", "60591-5")] == 1
    assert table[("reports", "dsn-sent")] == 4
    assert table[("reports", "mdn-sent")] == 4
    assert table[("median_delivery_seconds", "messages_measured")] >= 4
    assert table[("median_delivery_seconds", "accepted_to_delivered_or_relayed")] >= 0
    services = {dim.split("/")[0] for (ind, dim) in table if ind == "connections"}
    assert {"smtp", "imap"} <= services, table
    # Another month: nothing sent then.
    other = await asyncio.to_thread(_cli, gateway, "--month", "2020-01")
    assert other.exit_code == 0
    assert ",messages_sent,submitted_by_users,0" in other.output


async def test_bad_month_exits_2_naming_it(gateway: RunningGateway) -> None:
    for bad in ("2026-13", "11/2026", "2026-1"):
        result = await asyncio.to_thread(_cli, gateway, "--month", bad)
        assert result.exit_code == 2
        assert repr(bad) in result.output
