"""Submission (587 STARTTLS, 465 implicit TLS) against the real gateway, with real clients.

Each message is checked where it must end up: the mailbox rows, the decrypted stored body,
the proofs and the outbound queue. One test per refusal of the submission rules.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import smtplib
import ssl
from email.parser import BytesHeaderParser
from typing import Any

import aiosmtplib
import pytest

from tests.fixtures.gateway import RunningGateway
from trustspace.pki import ensure_dev_pki, issue_certificate
from trustspace.whitelist import build_whitelist_xml

pytestmark = pytest.mark.timeout(60)

XDM_ZIP = bytes(range(256)) * 40 + b"PK\x05\x06" + b"\x00" * 18
X_MSS_HEADERS = (
    b"X-MSS-CODECDA: 11502-2^^^LOINC\r\n"
    b"X-MSS-INS: 1 84 05 75 123 456 78^^^&1.2.250.1.213.1.4.8&ISO^INS-NIR\r\n"
    b"X-MSS-NIL: ^^^&1.2.250.1.71.4.2.7&ISO\r\n"
    b"X-MSS-MES: =?utf-8?q?Compte_rendu_d=27examen?=\r\n"
)


def simple_message(sender: str, to: str, subject: str = "hello", *, msgid: bool = True,
                   date: bool = True) -> bytes:
    head = f"From: Dr Demo <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
    if msgid:
        head += f"Message-ID: <{subject.replace(' ', '-')}.1@client.test>\r\n"
    if date:
        head += "Date: Mon, 18 Mar 2024 10:00:00 +0100\r\n"
    return (head + "\r\nBonjour,\r\n.leading dot line\r\nfin\r\n").encode()


def mss_message(sender: str, to: str, token: str) -> tuple[bytes, bytes]:
    """A message carrying the X-MSS headers and an IHE_XDM.ZIP part; (message, zip part)."""
    b64 = base64.encodebytes(XDM_ZIP).replace(b"\n", b"\r\n")
    part = (
        b"Content-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n" + b64
    )
    message = (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: CR {token}\r\n"
        f"Message-ID: <{token}@dpi.test>\r\nDate: Mon, 18 Mar 2024 10:00:00 +0100\r\n"
        .encode()
        + X_MSS_HEADERS
        + b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu joint.\r\n"
        b"--b1\r\n" + part + b"\r\n--b1--\r\n"
    )
    return message, part


def send(gw: RunningGateway, user: str, password: str, sender: str, rcpts: list[str],
         message: bytes, **options: Any) -> dict[str, Any]:
    """smtplib over STARTTLS with AUTH; returns refused recipients."""
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context())
        client.login(user, password)
        return client.sendmail(sender, rcpts, message, **options)


async def asend(gw: RunningGateway, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return await asyncio.to_thread(send, gw, *args, **kwargs)


def session(gw: RunningGateway, user: str | None = None,
            password: str | None = None) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30)
    client.starttls(context=gw.client_context())
    client.ehlo()
    if user is not None:
        assert password is not None
        client.login(user, password)
    return client


def header_block(raw: bytes) -> bytes:
    return raw[: raw.index(b"\r\n\r\n") + 2]


# -- messages that land ----------------------------------------------------------------------


async def test_smtplib_starttls_delivers_to_local_inbox(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    original = simple_message(gateway.demo_address, bob, "first")

    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.mail(gateway.demo_address)
            client.rcpt(bob)
            return client.data(original)

    code, reply = await asyncio.to_thread(run)
    assert code == 250 and re.match(rb"2\.0\.0 Ok: queued as [A-Z2-7]{16}$", reply), reply
    [row] = await gateway.inbox_messages(bob)
    raw = await gateway.raw_message(row)
    assert raw.endswith(original)  # nothing of the original changed, only fields prepended
    added = raw[: -len(original)]
    assert added.startswith(b"Received: from ")
    assert re.search(rb"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+/\d+ bits\)\)", added)
    assert b"(Authenticated sender: demo@mssante.test, method PLAIN)" in added
    assert re.search(rb"by mx\.mssante\.test \(mssante-gateway\) with ESMTPSA id [A-Z2-7]{16}",
                     added)
    assert f"for <{bob}>;".encode() in added
    assert reply.decode().endswith(re.search(rb"id ([A-Z2-7]{16})", added)[1].decode())
    assert b"Message-ID" not in added and b"Date:" not in added.split(b";")[0]
    kinds = [p["kind"] for p in await gateway.proofs_for("<first.1@client.test>")]
    assert kinds == ["submitted", "delivered"]
    submitted = (await gateway.proofs_for("<first.1@client.test>"))[0]
    assert submitted["actor"] == gateway.demo_address
    assert '"method":"PLAIN"' in submitted["details"]
    assert '"client_ip":"127.0.0.1"' in submitted["details"]
    assert '"tls_version":"TLSv1.3"' in submitted["details"]


async def test_mss_headers_and_xdm_zip_pass_byte_for_byte(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    message, part = mss_message(gateway.demo_address, bob, "xdm-1")
    await asend(gateway, gateway.demo_address, gateway.demo_password,
                gateway.demo_address, [bob], message)
    [row] = await gateway.inbox_messages(bob)
    stored = await gateway.raw_message(row)
    for name in (b"X-MSS-CODECDA", b"X-MSS-INS", b"X-MSS-NIL", b"X-MSS-MES"):
        line = next(x for x in X_MSS_HEADERS.split(b"\r\n") if x.startswith(name))
        found = re.search(re.escape(name) + rb":[^\r]*\r\n", stored)
        assert found is not None
        sent = hashlib.sha256(line + b"\r\n").hexdigest()
        assert hashlib.sha256(found[0]).hexdigest() == sent
    start = stored.index(b"Content-Type: application/zip")
    end = stored.index(b"\r\n--b1--")
    assert hashlib.sha256(stored[start:end]).hexdigest() == hashlib.sha256(part).hexdigest()
    body = stored[stored.index(b"\r\n\r\n"):]
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(
        message[message.index(b"\r\n\r\n"):]).hexdigest()


async def test_message_id_and_date_added_only_when_missing(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    bare = simple_message(gateway.demo_address, bob, "bare", msgid=False, date=False)
    await asend(gateway, gateway.demo_address, gateway.demo_password,
                gateway.demo_address, [bob], bare)
    [row] = await gateway.inbox_messages(bob)
    stored = await gateway.raw_message(row)
    headers = BytesHeaderParser().parsebytes(stored)
    assert re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{16}@mx\.mssante\.test>", headers["Message-ID"])
    assert row["message_id_header"] == headers["Message-ID"]
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}", headers["Date"])
    assert stored.endswith(bare)
    full = simple_message(gateway.demo_address, bob, "full")
    await asend(gateway, gateway.demo_address, gateway.demo_password,
                gateway.demo_address, [bob], full)
    stored = await gateway.raw_message((await gateway.inbox_messages(bob))[1])
    assert header_block(stored).count(b"Message-ID:") == 1
    assert header_block(stored).count(b"\r\nDate:") == 1


async def test_bcc_field_is_not_transmitted(gateway: RunningGateway) -> None:
    """RFC 5322 §3.6.3: a client that leaves the Bcc field in the message it submits does
    not show the blind recipients to the others; everything else is kept as sent."""
    bob, _ = await gateway.add_mailbox("bob-bcc")
    carol, _ = await gateway.add_mailbox("carol-bcc")
    head = simple_message(gateway.demo_address, bob, "blind copy")
    message = head.replace(b"\r\nSubject:", f"\r\nBcc: Dr Carol <{carol}>,\r\n <{bob}>"
                           "\r\nSubject:".encode(), 1)
    await asend(gateway, gateway.demo_address, gateway.demo_password,
                gateway.demo_address, [bob, carol], message)
    for reader in (bob, carol):
        [row] = await gateway.inbox_messages(reader)
        stored = await gateway.raw_message(row)
        assert b"Bcc" not in header_block(stored) and carol.encode() not in header_block(stored)
        assert stored.endswith(head), stored


async def test_aiosmtplib_starttls_and_implicit_tls(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    ctx = gateway.client_context()
    await aiosmtplib.send(
        simple_message(gateway.demo_address, bob, "aio-starttls"),
        sender=gateway.demo_address, recipients=[bob], hostname="127.0.0.1",
        port=gateway.submission_port, start_tls=True, tls_context=ctx,
        username=gateway.demo_address, password=gateway.demo_password,
    )
    await aiosmtplib.send(
        simple_message(gateway.demo_address, bob, "aio-implicit"),
        sender=gateway.demo_address, recipients=[bob], hostname="127.0.0.1",
        port=gateway.submissions_port, use_tls=True, tls_context=ctx,
        username=gateway.demo_address, password=gateway.demo_password,
    )
    rows = await gateway.inbox_messages(bob)
    assert [r["subject"] for r in rows] == ["aio-starttls", "aio-implicit"]


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls-587", "implicit-465"])
async def test_swaks(gateway: RunningGateway, implicit: bool) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    port = gateway.submissions_port if implicit else gateway.submission_port
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", "127.0.0.1", "--port", str(port),
        "--tlsc" if implicit else "--tls", "--tls-verify", "--tls-ca-path", str(gateway.ca_file),
        "--auth", "LOGIN", "--auth-user", gateway.demo_address,
        "--auth-password", gateway.demo_password,
        "--from", gateway.demo_address, "--to", bob,
        "--header", f"Subject: swaks {port}", "--header", f"From: <{gateway.demo_address}>",
        "--body", "sent by swaks",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert b"<~  250 2.0.0 Ok: queued as" in out
    [row] = await gateway.inbox_messages(bob)
    stored = await gateway.raw_message(row)
    assert b"method LOGIN)" in stored


async def test_sasl_external_with_cps_certificate(gateway: RunningGateway) -> None:
    """The demo mailbox holder (idNatPS 810000000001) authenticates with a CPS certificate."""
    bob, _ = await gateway.add_mailbox("bob")
    pki = await asyncio.to_thread(ensure_dev_pki, gateway.settings)
    cps = await asyncio.to_thread(
        issue_certificate, pki, "cps", idnat="810000000001", name="Camille Demo",
        out_dir=gateway.settings.data_dir / "issued",
    )

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context(cps.cert_file, cps.key_file))
            client.ehlo()
            assert "EXTERNAL" in client.esmtp_features["auth"]
            code, reply = client.docmd("AUTH", "EXTERNAL =")
            assert code == 235, reply
            client.sendmail(gateway.demo_address, [bob],
                            simple_message(gateway.demo_address, bob, "external"))
            return code, reply

    await asyncio.to_thread(run)
    [row] = await gateway.inbox_messages(bob)
    assert b"method EXTERNAL)" in await gateway.raw_message(row)


async def test_remote_trusted_recipient_is_queued_with_dsn_parameters(
    gateway: RunningGateway,
) -> None:
    remote = "dr.durand@ch-exemple.mssante.fr"
    await asend(
        gateway, gateway.demo_address, gateway.demo_password, gateway.demo_address, [remote],
        simple_message(gateway.demo_address, remote, "remote"),
        mail_options=["RET=HDRS", "ENVID=env-42"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{remote}"],
    )
    [row] = await gateway.queue_rows()
    assert (row["recipient"], row["domain"]) == (remote, "ch-exemple.mssante.fr")
    # The outbound worker may already hold it (or have deferred it: no such host here).
    assert row["state"] in ("queued", "inflight", "deferred")
    assert row["notify"] == "FAILURE,SUCCESS"
    assert row["orcpt"] == f"rfc822;{remote}"
    assert (row["ret"], row["envid"], row["sender"]) == ("HDRS", "env-42", gateway.demo_address)
    kinds = [p["kind"] for p in await gateway.proofs_for("<remote.1@client.test>")]
    assert kinds[0] == "submitted" and set(kinds) <= {"submitted", "deferred"}


async def test_unicode_domain_in_trust_space_is_accepted(gateway: RunningGateway) -> None:
    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.ehlo()
            client.command_encoding = "utf-8"
            assert client.mail(gateway.demo_address, ["SMTPUTF8"])[0] == 250
            assert client.rcpt("dr@xn--hpital--hya6g.mssante.fr")[0] == 250
            return client.rcpt("dr@hôpital-é.mssante.fr")

    code, reply = await asyncio.to_thread(run)
    assert code == 250, reply


# -- the refusal matrix ---------------------------------------------------------------------


async def test_auth_before_starttls_is_refused(gateway: RunningGateway) -> None:
    def run() -> tuple[int, bytes, bool]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.ehlo()
            offered = client.has_extn("auth")
            token = base64.b64encode(
                f"\0{gateway.demo_address}\0{gateway.demo_password}".encode()).decode()
            code, reply = client.docmd("AUTH", f"PLAIN {token}")
            return code, reply, offered

    code, reply, offered = await asyncio.to_thread(run)
    assert not offered
    assert (code, reply[:6]) == (538, b"5.7.11"), reply
    assert b"STARTTLS" in reply


async def test_wrong_password_is_refused(gateway: RunningGateway) -> None:
    def run() -> None:
        with session(gateway) as client:
            client.login(gateway.demo_address, "not-the-password")

    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        await asyncio.to_thread(run)
    assert err.value.smtp_code == 535
    assert err.value.smtp_error.startswith(b"5.7.8 ")


async def test_mail_without_auth_is_refused(gateway: RunningGateway) -> None:
    def run() -> tuple[int, bytes]:
        with session(gateway) as client:
            return client.mail(gateway.demo_address)

    code, reply = await asyncio.to_thread(run)
    assert (code, reply) == (530, b"5.7.0 Authentication required")


async def test_envelope_sender_spoofing_is_refused(gateway: RunningGateway) -> None:
    other, _ = await gateway.add_mailbox("other")

    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            return client.mail(other)

    code, reply = await asyncio.to_thread(run)
    assert code == 553
    assert reply == f"5.7.1 {gateway.demo_address} is not allowed to send as {other}".encode()


async def test_from_header_spoofing_is_refused(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    forged = simple_message("chef@mssante.test", bob, "forged")

    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.mail(gateway.demo_address)
            client.rcpt(bob)
            return client.data(forged)

    code, reply = await asyncio.to_thread(run)
    assert code == 553
    assert reply == f"5.7.1 {gateway.demo_address} is not allowed to send as " \
                    "chef@mssante.test".encode()
    assert await gateway.inbox_messages(bob) == []


async def test_recipient_outside_trust_space_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        await asend(gateway, gateway.demo_address, gateway.demo_password, gateway.demo_address,
                    ["someone@gmail.example"], simple_message(gateway.demo_address, "x", "t"))
    assert err.value.recipients["someone@gmail.example"] == (
        550, b"5.7.1 gmail.example is not in the MSSante trust space")


async def test_unicode_domain_outside_trust_space_is_refused(gateway: RunningGateway) -> None:
    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.ehlo()
            client.command_encoding = "utf-8"
            client.mail(gateway.demo_address, ["SMTPUTF8"])
            return client.rcpt("dr@clinique-é.example")

    code, reply = await asyncio.to_thread(run)
    # RFC 6531 §3.7.4.2: the transaction asked SMTPUTF8, so the reply may be UTF-8.
    assert (code, reply) == (550, "5.7.1 xn--clinique--j4a.example is not in the MSSanté "
                                  "trust space".encode())


async def test_unknown_local_mailbox_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        await asend(gateway, gateway.demo_address, gateway.demo_password, gateway.demo_address,
                    ["nobody@mssante.test"], simple_message(gateway.demo_address, "x", "t"))
    assert err.value.recipients["nobody@mssante.test"] == (
        550, b"5.1.1 mailbox nobody@mssante.test does not exist here")


async def test_suspended_mailbox_is_refused(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    await gateway.set_status(bob, "suspended")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        await asend(gateway, gateway.demo_address, gateway.demo_password, gateway.demo_address,
                    [bob], simple_message(gateway.demo_address, bob, "t"))
    assert err.value.recipients[bob] == (
        550, f"5.2.1 mailbox {bob} is suspended and does not accept mail".encode())


async def test_attachment_over_10mb_decoded_is_refused(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    big = base64.encodebytes(b"\x00" * (10 * 1024 * 1024 + 4096)).replace(b"\n", b"\r\n")
    message = (
        f"From: <{gateway.demo_address}>\r\nTo: <{bob}>\r\nSubject: big\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
        "--zz\r\nContent-Type: text/plain\r\n\r\nvoir PJ\r\n"
        "--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=\"imagerie.pdf\"\r\n\r\n"
    ).encode() + big + b"--zz--\r\n"

    def run() -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.mail(gateway.demo_address)
            client.rcpt(bob)
            return client.data(message)

    code, reply = await asyncio.to_thread(run)
    assert code == 552
    assert reply.startswith(b'5.3.4 attachment "imagerie.pdf" is 10.0 MB (10489856 octets) '
                            b"once decoded; each attachment may be at most 10.0 MB"), reply
    assert await gateway.inbox_messages(bob) == []


async def test_too_many_recipients(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")

    def run() -> list[tuple[int, bytes]]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.mail(gateway.demo_address)
            return [client.rcpt(bob) for _ in range(101)]

    replies = await asyncio.to_thread(run)
    assert {c for c, _ in replies[:100]} == {250}
    assert replies[100] == (452, b"4.5.3 Too many recipients (at most 100)")


async def test_invalid_whitelist_replacement_keeps_previous_list(
    gateway: RunningGateway,
) -> None:
    trust = gateway.gw.trust
    assert trust is not None
    before = trust.current
    gateway.settings.trustspace_file.write_bytes(b"<ListeBlanche><Domaines><Dom")  # truncated
    await asyncio.sleep(0.6)  # several file checks (interval 0.1 s)
    assert trust.current is before

    def rcpt(address: str) -> tuple[int, bytes]:
        with session(gateway, gateway.demo_address, gateway.demo_password) as client:
            client.mail(gateway.demo_address)
            return client.rcpt(address)

    assert (await asyncio.to_thread(rcpt, "dr@ch-exemple.mssante.fr"))[0] == 250
    assert (await asyncio.to_thread(rcpt, "dr@gmail.example"))[0] == 550
    # A valid replacement is adopted: the domain is then refused.
    gateway.settings.trustspace_file.write_bytes(build_whitelist_xml(["mssante.test"]))
    for _ in range(50):
        if trust.current is not before:
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(rcpt, "dr@ch-exemple.mssante.fr") == (
        550, b"5.7.1 ch-exemple.mssante.fr is not in the MSSante trust space")


async def test_client_certificate_from_unknown_ca_fails_handshake(
    gateway: RunningGateway, dev_pki: Any
) -> None:
    def run() -> None:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context(dev_pki.unknown.cert_file,
                                                           dev_pki.unknown.key_file))
            client.noop()

    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        await asyncio.to_thread(run)
