"""The SMTP protocol layer against real clients: EHLO, TLS, AUTH, PIPELINING, DSN, limits."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

import aiosmtplib

from tests.fixtures.smtp_protocol import ProtocolPki, RawClient, ready_session

MESSAGE = b"From: alice@mssante.test\r\nTo: bob@mssante.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def ehlo_keywords(text: str) -> list[str]:
    return [line[4:] for line in text.splitlines()[1:]]


# -- EHLO -------------------------------------------------------------------------------------
async def test_ehlo_advertises_exactly_the_supported_extensions(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await RawClient.connect(server.port)
        code, greeting = await client.reply()
        assert code == 220 and "ESMTP" in greeting
        code, text = await client.command("EHLO client.test")
        assert code == 250
        before = ehlo_keywords(text)
        assert before == [
            "PIPELINING", "SIZE 41943040", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
            "DSN", "CHUNKING", "STARTTLS",
        ]
        await client.starttls(protocol_pki.client_context())
        code, text = await client.command("EHLO client.test")
        after = ehlo_keywords(text)
        assert "STARTTLS" not in after
        assert after[-1] == "AUTH PLAIN LOGIN"  # no EXTERNAL without a client certificate
        await client.close()


async def test_ehlo_offers_external_only_with_a_verified_client_certificate(
    smtp_server, protocol_pki
):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(
            server.port, protocol_pki, kind="submission", login=False, client_cert=True
        )
        code, text = await client.command("EHLO client.test")
        assert ehlo_keywords(text)[-1] == "AUTH PLAIN LOGIN EXTERNAL"
        await client.close()


async def test_relay_never_offers_auth(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay", client_cert=True)
        code, text = await client.command("EHLO client.test")
        assert not any(k.startswith("AUTH") for k in ehlo_keywords(text))
        code, text = await client.command("AUTH PLAIN AGFsaWNlAHg=")
        assert code == 502 and "5.5.1" in text and "mutual TLS" in text
        await client.close()


# -- TLS and AUTH refusals -------------------------------------------------------------------
async def test_auth_before_starttls_is_refused_538(smtp_server):
    async with smtp_server("submission") as (server, policy):
        client = await RawClient.connect(server.port)
        await client.reply()
        await client.command("EHLO client.test")
        code, text = await client.command("AUTH PLAIN AGFsaWNlAHg=")
        assert (code, text[:11]) == (538, "538 5.7.11 ")
        assert policy.auth_calls == []
        await client.close()


async def test_plaintext_mail_refused_on_relay_and_submission(smtp_server):
    for kind in ("relay", "submission"):
        async with smtp_server(kind) as (server, _):
            client = await RawClient.connect(server.port)
            await client.reply()
            await client.command("EHLO client.test")
            code, text = await client.command("MAIL FROM:<a@mssante.test>")
            assert text == "530 5.7.0 Must issue a STARTTLS command first"
            await client.close()


async def test_submission_requires_auth_before_mail(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        code, text = await client.command("MAIL FROM:<alice@mssante.test>")
        assert text == "530 5.7.0 Authentication required"
        await client.close()


async def test_wrong_password_is_535(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        token = base64.b64encode(b"\0alice@mssante.test\0wrong").decode()
        code, text = await client.command(f"AUTH PLAIN {token}")
        assert text == "535 5.7.8 Authentication credentials invalid"
        assert policy.auth_calls == [("PLAIN", "alice@mssante.test")]
        await client.close()


async def test_unknown_mechanism_and_bad_base64(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        code, text = await client.command("AUTH EXTERNAL =")  # no client certificate
        assert code == 504 and "5.5.4" in text
        code, text = await client.command("AUTH PLAIN !!!")
        assert code == 501 and "5.5.2" in text
        await client.close()


async def test_starttls_discards_injected_plaintext_commands(smtp_server, protocol_pki):
    """RFC 3207 §6 / CVE-2011-0411: commands pipelined after STARTTLS are dropped."""
    async with smtp_server("relay") as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        await client.command("EHLO client.test")
        await client.send(b"STARTTLS\r\nNOOP injected\r\n")
        code, _ = await client.reply()
        assert code == 220
        await client.writer.start_tls(protocol_pki.client_context(), server_hostname="localhost")
        code, text = await client.command("NOOP")
        assert code == 250  # the first reply over TLS answers our NOOP, not the injected one
        code, text = await client.command("MAIL FROM:<a@b.test>")
        assert code == 503 and "EHLO" in text  # session state was reset by STARTTLS
        await client.close()


# -- real clients ------------------------------------------------------------------------------
async def test_smtplib_starttls_login_send(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, policy):

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as s:
                s.starttls(context=protocol_pki.client_context())
                s.login("alice@mssante.test", "correct horse")
                s.sendmail("alice@mssante.test", ["bob@mssante.test"], MESSAGE)

        await asyncio.to_thread(send)
        [msg] = policy.accepted
        assert msg.data == MESSAGE
        assert msg.identity is not None and msg.identity.login == "alice@mssante.test"
        assert msg.tls_version in ("TLSv1.2", "TLSv1.3") and msg.tls_cipher
        assert msg.peer_cert is None


async def test_aiosmtplib_implicit_tls_submission(smtp_server, protocol_pki):
    async with smtp_server("submissions") as (server, policy):
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=server.port, use_tls=True,
            tls_context=protocol_pki.client_context(),
        )
        await client.connect()
        assert "starttls" not in client.esmtp_extensions
        await client.login("alice@mssante.test", "correct horse")
        errors, reply = await client.sendmail(
            "alice@mssante.test", ["bob@mssante.test"], MESSAGE
        )
        assert errors == {} and "Q1" in reply
        await client.quit()
        assert policy.accepted[0].data == MESSAGE


async def test_relay_with_client_certificate_exposes_tls_facts(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="relay", client_cert=True)
        for line in ("MAIL FROM:<x@hopital-b.mssante.test>", "RCPT TO:<bob@mssante.test>"):
            code, text = await client.command(line)
            assert code == 250, text
        code, _ = await client.command("DATA")
        assert code == 354
        await client.send(MESSAGE + b".\r\n")
        code, text = await client.reply()
        assert text == "250 2.0.0 Ok: queued as Q1"
        [msg] = policy.accepted
        assert msg.peer_cert == protocol_pki.client_der
        assert msg.kind == "relay" and msg.identity is None
        await client.close()


async def test_auth_external_with_client_certificate(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, policy):
        client = await ready_session(
            server.port, protocol_pki, kind="submission", login=False, client_cert=True
        )
        code, text = await client.command("AUTH EXTERNAL =")
        assert text == "235 2.7.0 Authentication successful"
        assert policy.auth_calls == [("EXTERNAL", "")]
        await client.close()


# -- PIPELINING ---------------------------------------------------------------------------------
async def test_pipelined_batch_in_one_write(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        await client.send(
            b"MAIL FROM:<x@hopital-b.mssante.test>\r\n"
            b"RCPT TO:<bob@mssante.test>\r\n"
            b"RCPT TO:<unknown@mssante.test>\r\n"
            b"RCPT TO:<carol@mssante.test>\r\n"
            b"DATA\r\n"
        )
        replies = [await client.reply() for _ in range(5)]
        assert [c for c, _ in replies] == [250, 250, 550, 250, 354]
        assert replies[2][1].startswith("550 5.1.1 ")
        await client.send(
            MESSAGE + b".\r\nMAIL FROM:<y@hopital-b.mssante.test>\r\nRSET\r\nQUIT\r\n"
        )
        codes = [(await client.reply())[0] for _ in range(4)]
        assert codes == [250, 250, 250, 221]
        [msg] = policy.accepted
        assert [r.address for r in msg.recipients] == ["bob@mssante.test", "carol@mssante.test"]
        await client.close()


# -- DSN ------------------------------------------------------------------------------------------
async def test_dsn_parameters_are_kept_per_recipient(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        for line in (
            "MAIL FROM:<x@hopital-b.mssante.test> RET=HDRS ENVID=Ab+2Bc SIZE=100 BODY=8BITMIME",
            "RCPT TO:<bob@mssante.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+40mssante.test",
            "RCPT TO:<carol@mssante.test> NOTIFY=NEVER",
            "RCPT TO:<dan@mssante.test>",
        ):
            code, text = await client.command(line)
            assert code == 250, text
        await client.command("DATA")
        await client.send(MESSAGE + b".\r\n")
        assert (await client.reply())[0] == 250
        [msg] = policy.accepted
        assert msg.mail_params.ret == "HDRS" and msg.mail_params.envid == "Ab+c"
        assert msg.mail_params.size == 100 and msg.mail_params.body == "8BITMIME"
        bob, carol, dan = msg.recipients
        assert bob.params.notify == {"SUCCESS", "FAILURE"}
        assert bob.params.orcpt == ("rfc822", "Bob@mssante.test")
        assert carol.params.notify == {"NEVER"} and carol.params.orcpt is None
        assert dan.params.notify is None
        await client.close()


async def test_malformed_dsn_parameters_are_501_naming_the_parameter(smtp_server, protocol_pki):
    cases = [
        ("MAIL FROM:<x@h.test> RET=BOGUS", "501 5.5.4 RET parameter"),
        ("MAIL FROM:<x@h.test> ENVID=a=b", "501 5.5.4 ENVID parameter"),
        ("MAIL FROM:<x@h.test> ENVID=" + "a" * 101, "501 5.5.4 ENVID parameter"),
        ("MAIL FROM:<x@h.test> RET=FULL RET=HDRS", "501 5.5.4 RET parameter"),
        ("MAIL FROM:<x@h.test> FOO=1", "555 5.5.4 FOO parameter"),
    ]
    rcpt_cases = [
        ("RCPT TO:<b@mssante.test> NOTIFY=NEVER,SUCCESS", "501 5.5.4 NOTIFY parameter"),
        ("RCPT TO:<b@mssante.test> NOTIFY=SOMETIMES", "501 5.5.4 NOTIFY parameter"),
        ("RCPT TO:<b@mssante.test> ORCPT=b@mssante.test", "501 5.5.4 ORCPT parameter"),
        ("RCPT TO:<b@mssante.test> ORCPT=rfc822;b+4", "501 5.5.4 ORCPT parameter"),
    ]
    async with smtp_server("relay", max_bad_commands=50) as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        for line, expected in cases:
            code, text = await client.command(line)
            assert text.startswith(expected), (line, text)
        assert (await client.command("MAIL FROM:<x@h.test>"))[0] == 250
        for line, expected in rcpt_cases:
            code, text = await client.command(line)
            assert text.startswith(expected), (line, text)
        await client.close()


# -- SIZE and recipients -----------------------------------------------------------------------
async def test_declared_size_over_limit_is_552_before_data(smtp_server, protocol_pki):
    async with smtp_server("relay", max_message_size=4096) as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        code, text = await client.command("MAIL FROM:<x@h.test> SIZE=4097")
        assert code == 552 and text.startswith("552 5.3.4 SIZE parameter")
        await client.close()


async def test_actual_size_over_limit_is_552_at_end_of_data(smtp_server, protocol_pki):
    async with smtp_server("relay", max_message_size=4096) as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        await client.command("MAIL FROM:<x@h.test>")
        await client.command("RCPT TO:<b@mssante.test>")
        await client.command("DATA")
        await client.send(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 200)
        await client.send(b".\r\n")
        code, text = await client.reply()
        assert code == 552 and text.startswith("552 5.3.4 Message size exceeds")
        assert policy.accepted == []
        assert (await client.command("NOOP"))[0] == 250  # the session is still in step
        await client.close()


async def test_too_many_recipients_is_452(smtp_server, protocol_pki):
    async with smtp_server("relay", max_recipients=2) as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        await client.command("MAIL FROM:<x@h.test>")
        assert (await client.command("RCPT TO:<a@mssante.test>"))[0] == 250
        assert (await client.command("RCPT TO:<b@mssante.test>"))[0] == 250
        code, text = await client.command("RCPT TO:<c@mssante.test>")
        assert text.startswith("452 4.5.3 Too many recipients")
        await client.close()


# -- limits on the session ---------------------------------------------------------------------
async def test_bad_commands_end_with_421(smtp_server, protocol_pki):
    async with smtp_server("relay", max_bad_commands=3) as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        assert (await client.command("FOO"))[1].startswith("500 5.5.2")
        assert (await client.command("BAR"))[1].startswith("500 5.5.2")
        await client.send(b"RCPT TO:<a@b>\r\n")
        code, text = await client.reply()
        assert code == 530
        code, text = await client.reply()
        assert text.startswith("421 4.7.0") and "too many errors" in text
        assert await client.closed()
        await client.close()


async def test_idle_timeout_is_421(smtp_server):
    async with smtp_server("relay", idle_timeout=1) as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        code, text = await client.reply(wait=5)
        assert text.startswith("421 4.4.2") and "timeout" in text
        assert await client.closed()
        await client.close()


async def test_session_timeout_is_421_even_when_active(smtp_server):
    async with smtp_server("relay", idle_timeout=30, session_timeout=1) as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        for _ in range(30):
            code, text = await client.command("NOOP")
            if code == 421:
                break
            await asyncio.sleep(0.1)
        assert text.startswith("421 4.4.2") and "too long" in text
        await client.close()


async def test_per_ip_connection_limit_is_421_at_connect(smtp_server):
    async with smtp_server("relay", max_connections_per_ip=2) as (server, _):
        first = await RawClient.connect(server.port)
        second = await RawClient.connect(server.port)
        assert (await first.reply())[0] == 220 and (await second.reply())[0] == 220
        third = await RawClient.connect(server.port)
        code, text = await third.reply()
        assert text.startswith("421 4.7.0") and "too many connections from 127.0.0.1" in text
        assert await third.closed()
        await third.close()
        await first.command("QUIT")
        await first.close()
        await asyncio.sleep(0.1)
        fourth = await RawClient.connect(server.port)
        assert (await fourth.reply())[0] == 220
        await fourth.close()
        await second.close()


async def test_close_with_grace_says_421_to_idle_sessions(smtp_server):
    async with smtp_server("relay") as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        await server.close(0.2)
        code, text = await client.reply()
        assert text.startswith("421 4.3.2")
        try:
            await RawClient.connect(server.port)
            raise AssertionError("the listener still accepts connections")
        except OSError:
            pass
        await client.close()


def test_tls_floor_is_raised_to_1_2(protocol_pki: ProtocolPki) -> None:
    from smtp.server import _tls_floor

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert _tls_floor(ctx).minimum_version == ssl.TLSVersion.TLSv1_2
