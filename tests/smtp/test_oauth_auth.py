"""SMTP submission AUTH OAUTHBEARER / XOAUTH2 (RFC 7628) with Pro Santé Connect tokens,
driven by smtplib; a message sent after a token login arrives."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
from email.message import EmailMessage

import pytest

from tests.fixtures.oidc_provider import PscGateway, oauthbearer, xoauth2


def connect(gw: PscGateway) -> smtplib.SMTP_SSL:
    ctx = ssl.create_default_context(cafile=str(gw.running.ca_file))
    smtp = smtplib.SMTP_SSL("127.0.0.1", gw.running.submissions_port, context=ctx, timeout=20)
    smtp.ehlo("client.example")
    return smtp


def authenticate(smtp: smtplib.SMTP_SSL, mechanism: str, user: str, token: str,
                 challenges: list[bytes]) -> tuple[int, bytes]:
    message = (xoauth2 if mechanism == "XOAUTH2" else oauthbearer)(user, token)

    def answer(challenge: bytes | None = None) -> str:
        if challenge is None:
            return message
        challenges.append(challenge)
        return "" if mechanism == "XOAUTH2" else "\x01"  # RFC 7628 §3.2.3 dummy answer

    return smtp.auth(mechanism, answer)


async def test_ehlo_offers_the_token_mechanisms(psc_gateway: PscGateway) -> None:
    def run() -> str:
        smtp = connect(psc_gateway)
        auth = smtp.esmtp_features.get("auth", "")
        smtp.quit()
        return auth

    assert {"OAUTHBEARER", "XOAUTH2"} <= set((await asyncio.to_thread(run)).split())


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_a_good_token_sends_a_message(psc_gateway: PscGateway, mechanism: str) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat)
    address = psc_gateway.address

    def run() -> tuple[int, bytes]:
        smtp = connect(psc_gateway)
        reply = authenticate(smtp, mechanism, address, token, [])
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = address, address, f"via {mechanism}"
        msg.set_content("Bonjour.\n")
        smtp.send_message(msg)
        smtp.quit()
        return reply

    code, _text = await asyncio.to_thread(run)
    assert code == 235
    for _ in range(100):
        if await psc_gateway.running.inbox_messages(address):
            break
        await asyncio.sleep(0.05)
    assert any(m["subject"] == f"via {mechanism}"
               for m in await psc_gateway.running.inbox_messages(address))


async def test_wrong_tokens_get_the_json_challenge_then_535(psc_gateway: PscGateway) -> None:
    provider, idnat, address = psc_gateway.provider, psc_gateway.idnat, psc_gateway.address
    now = int(time.time())
    cases = {
        "expired": provider.token(idnat, exp=now - 60, iat=now - 400),
        "not yet valid": provider.token(idnat, nbf=now + 300),
        "wrong audience": provider.token(idnat, aud="someone-else"),
        "wrong issuer": provider.token(idnat, iss="https://evil.example/auth"),
        "alg none": provider.unsigned_token(idnat),
        "HS256 with the public key": provider.hs256_with_public_key(idnat),
        "unknown kid": provider.token(idnat, kid="zz", key=provider.keys[provider.published[-1]]),
        "unknown idNatPS": provider.token("810009999999"),
    }

    def run() -> dict[str, tuple[int, str, list[bytes]]]:
        out = {}
        for name, token in cases.items():
            smtp = connect(psc_gateway)
            challenges: list[bytes] = []
            try:
                authenticate(smtp, "OAUTHBEARER", address, token, challenges)
                out[name] = (235, "", challenges)
            except smtplib.SMTPAuthenticationError as exc:
                out[name] = (exc.smtp_code, exc.smtp_error.decode(), challenges)
            smtp.close()
        return out

    for name, (code, text, challenges) in (await asyncio.to_thread(run)).items():
        assert (code, text.split(" ")[0]) == (535, "5.7.8"), (name, code, text)
        assert json.loads(challenges[-1])["status"] == "invalid_token", name


async def test_a_malformed_message_is_a_syntax_error(psc_gateway: PscGateway) -> None:
    def run() -> tuple[int, bytes]:
        smtp = connect(psc_gateway)
        try:
            return smtp.docmd("AUTH", "OAUTHBEARER bixhPXVzZXIsAWF1dGg9QmFzaWMgeHgBAQ==")
        finally:
            smtp.close()

    code, text = await asyncio.to_thread(run)
    assert code == 501 and b"Bearer" in text


async def test_mail_after_the_token_expired_is_refused(psc_gateway: PscGateway) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat, exp=int(time.time()) + 2)

    def run() -> tuple[int, bytes]:
        smtp = connect(psc_gateway)
        authenticate(smtp, "XOAUTH2", psc_gateway.address, token, [])
        time.sleep(2.5)
        reply = smtp.mail(psc_gateway.address)
        smtp.close()
        return reply

    code, text = await asyncio.to_thread(run)
    assert code == 530 and text.startswith(b"5.7.0") and b"expired" in text


async def test_token_attempts_are_traced_without_the_token(psc_gateway: PscGateway) -> None:
    from sqlalchemy import select

    from storage.schema import traces

    good = psc_gateway.provider.token(psc_gateway.idnat)
    bad = psc_gateway.provider.token(psc_gateway.idnat, aud="someone-else")

    def run() -> None:
        for token in (good, bad):
            smtp = connect(psc_gateway)
            try:
                authenticate(smtp, "XOAUTH2", psc_gateway.address, token, [])
            except smtplib.SMTPAuthenticationError:
                pass
            smtp.close()

    await asyncio.to_thread(run)
    gw = psc_gateway.running.gw
    assert gw.authenticator is not None and gw.db is not None
    await gw.authenticator.traces.flush()
    async with gw.db.read() as conn:
        rows = (await conn.execute(select(traces).where(traces.c.service == "smtp"))).all()
    seen = sorted((r.event, r.detail["result"], r.detail["client"]) for r in rows)
    assert seen == [("auth_failure", "wrong audience", "127.0.0.1"),
                    ("auth_success", "ok", "127.0.0.1")]
    assert not any(good in str(r.detail) or bad in str(r.detail) for r in rows)


async def test_psc_out_of_reach_is_a_temporary_failure(psc_gateway: PscGateway) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat)  # its keys were never fetched
    assert psc_gateway.provider.server is not None
    await psc_gateway.provider.server.stop(0)

    def run() -> tuple[int, bytes]:
        smtp = connect(psc_gateway)
        try:
            return authenticate(smtp, "XOAUTH2", psc_gateway.address, token, [])
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code, exc.smtp_error
        finally:
            smtp.close()

    code, text = await asyncio.to_thread(run)
    assert code == 454 and text.startswith(b"4.7.0 Temporary authentication failure")
