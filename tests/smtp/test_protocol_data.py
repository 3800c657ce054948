"""DATA and BDAT: dot-unstuffing, content limits, SMTP smuggling, CHUNKING; plus swaks."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp.dsn_params import xtext_decode, xtext_encode
from tests.fixtures.smtp_protocol import RawClient, ready_session

HEAD = b"From: x@hopital-b.mssante.test\r\nTo: bob@mssante.test\r\nSubject: t\r\n\r\n"


async def open_transaction(port: int, pki, **kw) -> RawClient:
    client = await ready_session(port, pki, kind="relay", **kw)
    for line in ("MAIL FROM:<x@hopital-b.mssante.test>", "RCPT TO:<bob@mssante.test>"):
        code, text = await client.command(line)
        assert code == 250, text
    return client


async def send_data(client: RawClient, raw: bytes) -> tuple[int, str]:
    code, _ = await client.command("DATA")
    assert code == 354
    await client.send(raw)
    return await client.reply()


# -- DATA ----------------------------------------------------------------------------------------
async def test_dot_unstuffing_and_exact_content(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        body = HEAD + b"..leading dot\r\n.\r\n".replace(b".\r\n", b"..\r\n") + b"end.\r\n"
        code, text = await send_data(client, body + b".\r\n")
        assert code == 250, text
        assert policy.accepted[0].data == HEAD + b".leading dot\r\n.\r\nend.\r\n"
        await client.close()


async def test_large_message_in_one_write(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        body = HEAD + (b"x" * 76 + b"\r\n") * 30000  # ~2.3 MB
        code, text = await send_data(client, body + b".\r\n")
        assert code == 250, text
        assert policy.accepted[0].data == body
        await client.close()


async def test_long_line_is_refused(smtp_server, protocol_pki):
    async with smtp_server("relay", max_line_length=1000) as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, text = await send_data(client, HEAD + b"a" * 1001 + b"\r\n.\r\n")
        assert text.startswith("550 5.6.0") and "longer than 1000" in text
        assert policy.accepted == []
        await client.close()


async def test_too_many_header_fields(smtp_server, protocol_pki):
    async with smtp_server("relay", max_header_count=10) as (server, _):
        client = await open_transaction(server.port, protocol_pki)
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(11))
        code, text = await send_data(client, headers + b"\r\nbody\r\n.\r\n")
        assert text.startswith("552 5.3.4") and "header fields" in text
        await client.close()


async def test_header_section_too_large(smtp_server, protocol_pki):
    async with smtp_server("relay", max_header_size=1024) as (server, _):
        client = await open_transaction(server.port, protocol_pki)
        headers = b"Subject: " + b"w " * 300 + b"\r\n  " + b"z " * 300 + b"\r\n"
        code, text = await send_data(client, headers + b"\r\nbody\r\n.\r\n")
        assert text.startswith("552 5.3.4") and "header section" in text
        await client.close()


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"],
    ids=["LF.LF", "CR.CR", "LF.CRLF", "CRLF.LF", "CR.CRLF"],
)
async def test_smtp_smuggling_never_ends_data(smtp_server, protocol_pki, fake_end):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        smuggled = (
            b"MAIL FROM:<ceo@mssante.test>\r\nRCPT TO:<bob@mssante.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n.\r\n"
        )
        await client.command("DATA")
        await client.send(HEAD + b"first" + fake_end + smuggled)
        # the smuggled ".\r\n" right after "evil\r\n" is the real end: exactly one reply
        code, text = await client.reply()
        assert text.startswith("550 5.6.11") and "bare CR or LF" in text
        code, text = await client.command("NOOP")
        assert code == 250, "a smuggled command was answered: " + text
        assert policy.accepted == []
        await client.close()


async def test_bare_lf_alone_is_refused(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, text = await send_data(client, HEAD + b"line\nother\r\n.\r\n")
        assert text.startswith("550 5.6.11")
        assert policy.accepted == []
        await client.close()


# -- BDAT (RFC 3030) ----------------------------------------------------------------------------
async def test_bdat_chunks_and_last(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        part1, part2 = HEAD + b"first part\r\n", b".dots stay\r\n"
        await client.send(b"BDAT %d\r\n" % len(part1) + part1)
        assert await client.reply() == (250, f"250 2.0.0 {len(part1)} octets received")
        await client.send(b"BDAT %d\r\n" % len(part2) + part2 + b"BDAT 0 LAST\r\n")
        assert (await client.reply())[0] == 250
        code, text = await client.reply()
        assert text == "250 2.0.0 Ok: queued as Q1"
        assert policy.accepted[0].data == part1 + part2
        await client.close()


async def test_data_after_bdat_is_503(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, _):
        client = await open_transaction(server.port, protocol_pki)
        await client.send(b"BDAT 5\r\nab\r\n\r")
        await client.reply()
        code, text = await client.command("DATA")
        assert text.startswith("503 5.5.1") and "after BDAT" in text
        await client.close()


async def test_bdat_without_transaction_consumes_the_chunk(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        await client.send(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\n")
        code, text = await client.reply()
        assert text.startswith("503 5.5.1 Error: need MAIL")
        assert (await client.command("NOOP"))[0] == 250  # the QUITs were data, not commands
        await client.close()


async def test_bdat_over_size_limit_is_552(smtp_server, protocol_pki):
    async with smtp_server("relay", max_message_size=2048) as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        chunk = HEAD + b"y" * 3000
        await client.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        code, text = await client.reply()
        assert text.startswith("552 5.3.4 Message size exceeds")
        assert (await client.command("NOOP"))[0] == 250
        assert policy.accepted == []
        await client.close()


async def test_bdat_bad_syntax_closes(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, _):
        client = await open_transaction(server.port, protocol_pki)
        code, text = await client.command("BDAT lots")
        assert text.startswith("501 5.5.4 Syntax: BDAT")
        code, text = await client.reply()
        assert code == 421
        await client.close()


async def test_rset_clears_bdat_state(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        await client.send(b"BDAT 4\r\njunk")
        await client.reply()
        assert (await client.command("RSET"))[0] == 250
        await client.command("MAIL FROM:<x@hopital-b.mssante.test>")
        await client.command("RCPT TO:<bob@mssante.test>")
        code, text = await send_data(client, HEAD + b"clean\r\n.\r\n")
        assert code == 250, text
        assert policy.accepted[0].data == HEAD + b"clean\r\n"
        await client.close()


# -- xtext --------------------------------------------------------------------------------------
@given(st.text())
def test_xtext_round_trip(value: str) -> None:
    encoded = xtext_encode(value)
    assert encoded.isascii() and "=" not in encoded
    assert xtext_decode(encoded).encode("latin-1") == value.encode("utf-8")


def test_xtext_rejects_lowercase_hex_and_equals() -> None:
    for bad in ("a+2b", "a=b", "a+4", "é"):
        with pytest.raises(ValueError):
            xtext_decode(bad)


# -- swaks (Debian's client) -------------------------------------------------------------------
async def swaks(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", "127.0.0.1", "--helo", "client.test", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_swaks_submission_starttls_auth(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, policy):
        rc, out = await swaks(
            "--port", str(server.port), "--tls", "--tls-ca-path", str(protocol_pki.ca_file),
            "--auth", "PLAIN", "--auth-user", "alice@mssante.test",
            "--auth-password", "correct horse",
            "--from", "alice@mssante.test", "--to", "bob@mssante.test",
        )
        assert rc == 0, out
        assert "235 2.7.0" in out
        assert policy.accepted[0].identity.login == "alice@mssante.test"


async def test_swaks_relay_with_client_certificate(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        rc, out = await swaks(
            "--port", str(server.port), "--tls",
            "--tls-cert", str(protocol_pki.client_cert),
            "--tls-key", str(protocol_pki.client_key),
            "--from", "x@hopital-b.mssante.test", "--to", "bob@mssante.test",
        )
        assert rc == 0, out
        assert policy.accepted[0].peer_cert == protocol_pki.client_der
