"""MAIL/RCPT path parsing: the quick path for ``<dot-atom@domain>`` answers exactly what
aiosmtpd's general address parser answers, and everything else still takes the general one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_settings
from smtp.limits import ConnectionCounter, SessionLimits
from smtp.session import GatewaySMTP
from tests.fixtures.smtp_protocol import ProtocolPki, RawClient, RecordingPolicy, ready_session

CASES = [
    "FROM:<dr.martin@mssante.test>",
    "FROM:<dr.martin@mssante.test> SIZE=1000 BODY=8BITMIME",
    "from:<A+b_c=d/e{f}|g~h@Ex-ample.COM>\tRET=HDRS",
    "TO:<user@domain> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@domain",
    "FROM:<a@b> (comment) SIZE=1",
    "FROM:<a@b>SIZE=1",
    'FROM:<"quoted local"@mssante.test>',
    "FROM:<a..b@c>",
    "FROM:<.a@b>",
    "FROM:<a@b.>",
    "FROM:<a@[192.0.2.1]>",
    "FROM:<@relay.test:a@b>",
    "FROM:<médecin@mssante.test> SMTPUTF8",
    "FROM:<> RET=FULL",
    "FROM:a@b",
    "FROM:<a@b",
    "FROM: <a@b>  SIZE=2",
    "TO:<a@b>",
    "FROM:",
]


def _general(session: GatewaySMTP, arg: str, keyword: str) -> tuple[str, list[str]] | None:
    """The answer of aiosmtpd's own parser, as ``_split_path`` gave it before the quick path."""
    rest = session._strip_command_keyword(keyword, arg)
    if rest is None:
        return None
    if rest.startswith("<>"):
        return "", rest[2:].split()
    address, params = session._getaddr(rest)
    if address is None or not address or params is None:
        return None
    return address, params.split()


def _outcome(call: Callable[[], object]) -> object:
    """A result or the exception type: the general parser raises on some broken input
    (e.g. ``<`` alone), and the quick path must not change that either."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc)


def _same(session: GatewaySMTP, arg: str, keyword: str) -> bool:
    return _outcome(lambda: session._split_path(arg, keyword)) == _outcome(
        lambda: _general(session, arg, keyword)
    )


def _session() -> GatewaySMTP:
    settings_ = load_settings(env={}, overrides={"smtp": {"relay_port": 0}})
    return GatewaySMTP(
        kind="submission",
        policy=RecordingPolicy(),
        limits=SessionLimits.from_settings(settings_.smtp),
        hostname="mx.mssante.test",
        starttls_context=None,
        counter=ConnectionCounter(10),
        sessions=set(),
    )


async def test_quick_path_matches_general_parser() -> None:
    session = _session()
    for case in CASES:
        for keyword in ("FROM:", "TO:"):
            assert _same(session, case, keyword), case


_PIECES = st.sampled_from(["a", "Z", "0", ".", "@", "<", ">", " ", "\t", "(", ")", '"', "-",
                           "+", "[", "]", ":", ",", "é", "=", "x.y", "SIZE=1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=20).map("".join))
def test_quick_path_matches_general_parser_on_any_text(text: str) -> None:
    async def check() -> None:
        session = _session()
        for arg in (f"FROM:{text}", f"FROM:<{text}", f"TO:<{text}> SIZE=1"):
            assert _same(session, arg, "FROM:") and _same(session, arg, "TO:"), arg

    asyncio.run(check())


async def test_paths_over_a_real_session(smtp_server, protocol_pki: ProtocolPki) -> None:  # type: ignore[no-untyped-def]
    async with smtp_server("submission") as (server, policy):
        client: RawClient = await ready_session(server.port, protocol_pki, kind="submission")
        try:
            assert (await client.command("MAIL FROM:<alice@mssante.test> SIZE=100"))[0] == 250
            # a comment after the path is CFWS for the general parser: still one recipient
            code, text = await client.command("RCPT TO:<bob@mssante.test> (desk)")
            assert code == 250 and "<bob@mssante.test>" in text
            code, text = await client.command('RCPT TO:<"b ob"@mssante.test>')
            assert code == 250 and '<"b ob"@mssante.test>' in text
            assert (await client.command("DATA"))[0] == 354
            code, _ = await client.command("Subject: t\r\n\r\nhello\r\n.")
            assert code == 250
        finally:
            await client.close()
    [accepted] = policy.accepted
    assert accepted.mail_from == "alice@mssante.test"
    assert accepted.mail_params is not None and accepted.mail_params.size == 100
    assert [r.address for r in accepted.recipients] == ["bob@mssante.test", '"b ob"@mssante.test']
