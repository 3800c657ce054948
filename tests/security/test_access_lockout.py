"""Issue 9 item 9: password guessing over many connections meets growing delays, then a
temporary lock, on SMTP submission and IMAP alike; unknown addresses and wrong passwords
get one reply; every attempt is traced. Real gateway, smtplib and imaplib; the durations
are made tiny through the [auth] settings."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from accounts.limiter import LoginLimiter
from config.settings import AuthSettings
from storage.schema import traces
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

pytestmark = pytest.mark.timeout(180)

LOCK = 6.0
FAST = {
    "delay_after_failures": 3, "delay_initial": 0.01, "delay_max": 0.05,
    "lock_after_failures": 10, "address_lock_after_failures": 1000,
    "address_delay_after_failures": 1000, "lock_duration": LOCK, "failure_window": 120.0,
    "address_hash_budget": 1000, "hash_budget_window": 60.0,
}
SMTP_FAILED = (535, b"5.7.8 Authentication credentials invalid")


@pytest.fixture
async def gw(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RunningGateway]:
    auth = {**FAST, **getattr(request, "param", {})}
    async with running_gateway(gateway_settings(tmp_path / "gw", auth=auth)) as running:
        yield running


def _imap_port(gw: RunningGateway) -> int:
    for service in gw.gw.services:
        if service.name == "IMAP":
            return int(service.server.tls_port)  # type: ignore[attr-defined]
    raise AssertionError("the IMAP service is not running")


def smtp_try(gw: RunningGateway, user: str, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN on a new connection: (code, text). (``login`` would try LOGIN after
    a failed PLAIN: two attempts.)"""
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                          timeout=30) as s:
        s.ehlo()
        s.user, s.password = user, password
        try:
            code, text = s.auth("PLAIN", s.auth_plain)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code, exc.smtp_error
        return code, text


def imap_try(gw: RunningGateway, user: str, password: str) -> str:
    """One LOGIN on a new connection: "OK" or the refusal text."""
    c = imaplib.IMAP4_SSL("127.0.0.1", _imap_port(gw), ssl_context=gw.client_context(),
                          timeout=30)
    try:
        c.login(user, password)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass
    return "OK"


async def auth_traces(gw: RunningGateway) -> list[dict[str, Any]]:
    await asyncio.sleep(0.6)  # traces are written in batches
    assert gw.gw.db is not None
    async with gw.gw.db.read() as conn:
        rows = await conn.execute(select(traces).where(traces.c.event.like("auth_%"))
                                  .order_by(traces.c.id))
        return [dict(r._mapping) for r in rows]


async def test_smtp_lock_after_failures_on_new_connections(gw: RunningGateway) -> None:
    user, password = await gw.add_mailbox("alice")

    def attack() -> tuple[list[tuple[int, bytes]], tuple[int, bytes], float]:
        replies = [smtp_try(gw, user, "wrong-password-" + str(n)) for n in range(40)]
        locked_at = time.monotonic()
        return replies, smtp_try(gw, user, password), locked_at
    replies, right, locked_at = await asyncio.to_thread(attack)
    assert set(replies) == {SMTP_FAILED}, set(replies)
    assert right == SMTP_FAILED, "the right password must be refused while the lock holds"
    unknown = await asyncio.to_thread(smtp_try, gw, "nobody@mssante.test", "whatever")
    assert unknown == SMTP_FAILED
    # The lock runs out: the right password works again.
    await asyncio.sleep(max(0.0, locked_at + LOCK + 0.5 - time.monotonic()))
    code, _ = await asyncio.to_thread(smtp_try, gw, user, password)
    assert code == 235

    rows = await auth_traces(gw)
    mine = [r for r in rows if r["detail"]["login"] == user]
    assert len(mine) == 42 and all(r["service"] == "smtp" for r in mine)
    assert all(r["detail"]["method"] == "PLAIN" and r["detail"]["client"] == "127.0.0.1"
               for r in mine)
    results = [r["detail"]["result"] for r in mine]
    assert results[:10] == ["wrong_password"] * 10
    assert results[10:41] == ["account_locked"] * 31
    assert results[41] == "ok" and mine[41]["event"] == "auth_success"
    assert mine[5]["detail"]["delay"] > 0  # delays grew before the lock
    assert any(r["detail"]["login"] == "nobody@mssante.test"
               and r["detail"]["result"] == "unknown" for r in rows)


async def test_imap_lock_after_failures_on_new_connections(gw: RunningGateway) -> None:
    user, password = await gw.add_mailbox("bob")

    def attack() -> tuple[list[str], str, str, float]:
        replies = [imap_try(gw, user, "wrong-" + str(n)) for n in range(40)]
        locked_at = time.monotonic()
        unknown = imap_try(gw, "nobody@mssante.test", "whatever")
        return replies, imap_try(gw, user, password), unknown, locked_at
    replies, right, unknown, locked_at = await asyncio.to_thread(attack)
    assert len(set(replies)) == 1 and "[AUTHENTICATIONFAILED]" in replies[0], set(replies)
    assert right == replies[0], "the right password must be refused while the lock holds"
    assert unknown == replies[0], "unknown user and wrong password must look the same"
    await asyncio.sleep(max(0.0, locked_at + LOCK + 0.5 - time.monotonic()))
    assert await asyncio.to_thread(imap_try, gw, user, password) == "OK"
    rows = [r for r in await auth_traces(gw) if r["detail"]["login"] == user]
    assert len(rows) == 42 and {r["service"] for r in rows} == {"imap"}
    assert [r["detail"]["result"] for r in rows].count("account_locked") == 31


async def test_smtp_and_imap_share_the_lock(gw: RunningGateway) -> None:
    user, password = await gw.add_mailbox("carol")

    def attack() -> tuple[str, tuple[int, bytes]]:
        for n in range(5):
            smtp_try(gw, user, f"bad{n}")
        for n in range(5):
            imap_try(gw, user, f"bad{n}")
        return imap_try(gw, user, password), smtp_try(gw, user, password)
    imap_reply, smtp_reply = await asyncio.to_thread(attack)
    assert "[AUTHENTICATIONFAILED]" in imap_reply
    assert smtp_reply == SMTP_FAILED


@pytest.mark.parametrize("gw", [{"address_hash_budget": 4, "hash_budget_window": 3600.0}],
                         indirect=True)
async def test_address_over_hash_budget_fails_without_checking(gw: RunningGateway) -> None:
    user, password = await gw.add_mailbox("dave")

    def attack() -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
        replies = [smtp_try(gw, f"user{n}@mssante.test", "guess") for n in range(6)]
        return replies, smtp_try(gw, user, password)
    replies, right = await asyncio.to_thread(attack)
    assert set(replies) == {SMTP_FAILED} and right == SMTP_FAILED
    results = [r["detail"]["result"] for r in await auth_traces(gw)]
    assert results == ["unknown"] * 4 + ["over_budget"] * 3


@pytest.mark.parametrize("gw", [{"address_lock_after_failures": 6}], indirect=True)
async def test_address_lock_covers_every_login(gw: RunningGateway) -> None:
    user, password = await gw.add_mailbox("erin")

    def attack() -> tuple[list[tuple[int, bytes]], str]:
        replies = [smtp_try(gw, f"spray{n}@mssante.test", "guess") for n in range(6)]
        return replies, imap_try(gw, user, password)
    replies, imap_reply = await asyncio.to_thread(attack)
    assert set(replies) == {SMTP_FAILED}
    assert "[AUTHENTICATIONFAILED]" in imap_reply
    rows = await auth_traces(gw)
    assert rows[-1]["detail"]["result"] == "address_locked"


def test_delays_double_then_cap() -> None:
    now = [0.0]
    limiter = LoginLimiter(AuthSettings(), clock=lambda: now[0])
    delays = []
    for _ in range(9):
        delays.append(limiter.before("a@mssante.test", "192.0.2.1").delay)
        limiter.failed("a@mssante.test", "192.0.2.1")
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 16]
    limiter.failed("a@mssante.test", "192.0.2.1")
    assert limiter.before("A@mssante.test ", None).refused == "account locked"
    now[0] += 901
    assert limiter.before("a@mssante.test", None).refused is None
    limiter.succeeded("a@mssante.test", None)
    assert limiter.before("a@mssante.test", None).delay == 0
