"""IMAP AUTHENTICATE OAUTHBEARER / XOAUTH2 (RFC 7628) with Pro Santé Connect tokens, driven
by imaplib against a gateway whose issuer is a local OIDC provider."""

from __future__ import annotations

import asyncio
import imaplib
import json
import ssl
import time
from collections.abc import Callable

import pytest

from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.fixtures.oidc_provider import PscGateway, oauthbearer, xoauth2


def connect(gw: PscGateway) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context(cafile=str(gw.running.ca_file))
    return imaplib.IMAP4_SSL("127.0.0.1", gw.imaps_port, ssl_context=ctx, timeout=20)


def login(gw: PscGateway, mechanism: str, token: str, user: str | None = None,
          ) -> tuple[imaplib.IMAP4_SSL, list[bytes]]:
    """Authenticates; returns the connection and the server challenges seen."""
    seen: list[bytes] = []
    make: Callable[[str, str], str] = xoauth2 if mechanism == "XOAUTH2" else oauthbearer
    message = make(user or gw.address, token)

    def answer(challenge: bytes) -> bytes:
        seen.append(challenge)
        if len(seen) == 1:
            return message.encode()
        return b"" if mechanism == "XOAUTH2" else b"\x01"  # RFC 7628 §3.2.3 dummy answer

    imap = connect(gw)
    try:
        imap.authenticate(mechanism, answer)
    except imaplib.IMAP4.error:
        imap.shutdown()
        raise
    return imap, seen


async def test_capability_lists_the_token_mechanisms_only_with_psc(
        psc_gateway: PscGateway, tmp_path: object) -> None:
    imap = await asyncio.to_thread(connect, psc_gateway)
    caps = imap.capabilities
    imap.shutdown()
    assert "AUTH=OAUTHBEARER" in caps and "AUTH=XOAUTH2" in caps


async def test_no_token_mechanism_without_psc(tmp_path: object) -> None:
    from pathlib import Path
    settings = gateway_settings(Path(str(tmp_path)) / "plain", directory={"enabled": False})
    async with running_gateway(settings) as running:
        port = next(s.server.tls_port for s in running.gw.services  # type: ignore[attr-defined]
                    if s.name == "IMAP")
        ctx = ssl.create_default_context(cafile=str(running.ca_file))

        def caps() -> tuple[str, ...]:
            imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
            found = imap.capabilities
            imap.shutdown()
            return found

        found = await asyncio.to_thread(caps)
    assert "AUTH=PLAIN" in found
    assert not any("OAUTH" in c for c in found)


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_a_good_token_opens_the_mailbox(psc_gateway: PscGateway, mechanism: str) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat)

    def run() -> tuple[str, list[bytes]]:
        imap, seen = login(psc_gateway, mechanism, token)
        typ, _data = imap.select("INBOX")
        imap.logout()
        return typ, seen

    typ, seen = await asyncio.to_thread(run)
    assert typ == "OK" and seen == [b""]  # one empty challenge: the message, then OK


async def test_every_wrong_token_is_refused(psc_gateway: PscGateway) -> None:
    provider = psc_gateway.provider
    idnat = psc_gateway.idnat
    now = int(time.time())
    from joserfc.jwk import RSAKey
    cases = {
        "not yet valid": provider.token(idnat, nbf=now + 300),
        "wrong audience": provider.token(idnat, aud="someone-else"),
        "wrong issuer": provider.token(idnat, iss="https://evil.example/auth"),
        "bad signature": provider.token(idnat, key=RSAKey.generate_key(2048)),
        "alg none": provider.unsigned_token(idnat),
        "HS256 with the public key": provider.hs256_with_public_key(idnat),
        "unknown kid": provider.token(idnat, kid="unknown-kid",
                                      key=provider.keys[provider.published[-1]]),
        "unknown idNatPS": provider.token("810009999999"),
        "opaque, not active": "0paque-t0ken-nobody-issued",
    }

    def run() -> dict[str, tuple[str, bytes]]:
        out = {}
        for name, token in cases.items():
            seen: list[bytes] = []

            def answer(challenge: bytes, seen: list[bytes] = seen, token: str = token) -> bytes:
                seen.append(challenge)
                return xoauth2(psc_gateway.address, token).encode() if len(seen) == 1 else b""

            imap = connect(psc_gateway)
            try:
                imap.authenticate("XOAUTH2", answer)
                out[name] = ("OK", b"")
            except imaplib.IMAP4.error as exc:
                out[name] = (str(exc), seen[-1])
            imap.shutdown()
        return out

    results = await asyncio.to_thread(run)
    for name, (reply, challenge) in results.items():
        assert "[AUTHENTICATIONFAILED]" in reply, (name, reply)
        error = json.loads(challenge)  # RFC 7628 §3.2.2 JSON error challenge
        assert error["status"] == "invalid_token", name
        assert error["openid-configuration"].endswith("/.well-known/openid-configuration")


async def test_an_expired_token_says_expired(psc_gateway: PscGateway) -> None:
    now = int(time.time())
    token = psc_gateway.provider.token(psc_gateway.idnat, exp=now - 60, iat=now - 400)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[EXPIRED\]"):
        await asyncio.to_thread(login, psc_gateway, "OAUTHBEARER", token)


async def test_a_token_of_another_professional_does_not_open_this_mailbox(
        psc_gateway: PscGateway) -> None:
    await psc_gateway.running.add_mailbox("bob.durand", idnat="810007654321")
    token = psc_gateway.provider.token("810007654321")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        await asyncio.to_thread(login, psc_gateway, "XOAUTH2", token, psc_gateway.address)


async def test_an_opaque_token_is_introspected(psc_gateway: PscGateway) -> None:
    token = psc_gateway.provider.opaque_token(psc_gateway.idnat)

    def run() -> str:
        imap, _seen = login(psc_gateway, "XOAUTH2", token)
        typ, _ = imap.select("INBOX")
        imap.logout()
        return typ

    assert await asyncio.to_thread(run) == "OK"
    assert psc_gateway.provider.introspections == 1


async def test_the_session_ends_when_the_token_expires(psc_gateway: PscGateway) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat, exp=int(time.time()) + 2)

    def run() -> str:
        imap, _seen = login(psc_gateway, "XOAUTH2", token)
        imap.select("INBOX")
        time.sleep(3.5)
        try:
            imap.noop()
        except imaplib.IMAP4.abort as exc:
            return str(exc)
        finally:
            imap.shutdown()
        return "still open"

    reply = await asyncio.to_thread(run)
    assert "EXPIRED" in reply or "expired" in reply, reply



async def test_psc_out_of_reach_is_unavailable_not_a_wrong_token(
        psc_gateway: PscGateway) -> None:
    token = psc_gateway.provider.token(psc_gateway.idnat)  # its keys were never fetched
    assert psc_gateway.provider.server is not None
    await psc_gateway.provider.server.stop(0)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        await asyncio.to_thread(login, psc_gateway, "OAUTHBEARER", token)
