"""A certificate revoked while the gateway runs is refused everywhere within seconds.

Before: in embedded mode the gateway never read ``pki/crl.pem``, so after ``mssante pki
revoke`` the certificate still relayed (250), still logged in with AUTH EXTERNAL on SMTP
(235) and IMAP (OK), kept its open IMAP session, and slapd accepted it for SASL EXTERNAL.
The revocation here goes through the real command line, on a real running gateway.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime import DEMO_IDNAT
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from trustspace.pki import IssuedFiles, ensure_authority, ensure_dev_pki, issue_certificate

pytestmark = pytest.mark.timeout(180)

IDNAT = "810000000077"
PEER_DOMAIN = "hopital-b.mssante.test"
WITHIN = 10.0


def _settings(tmp_path: Path, *, explicit_crl: bool) -> Any:
    # Two anchors: the embedded CA (which has a CRL) and another CA without any CRL.
    other = ensure_authority(tmp_path / "other-ca", "Other Operator Root CA")
    pki_dir = tmp_path / "gw" / "pki"
    # tls.crl_file_check_interval keeps its default (5 s): the 10 s promise holds as shipped.
    tls: dict[str, Any] = {"anchors": (str(pki_dir / "ca.pem"), str(other.cert_file))}
    if explicit_crl:
        tls["crl_files"] = (str(pki_dir / "crl.pem"),)
    return gateway_settings(tmp_path / "gw", tls=tls)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """Embedded defaults: no crl_files, the development CA's CRL is used anyway."""
    async with running_gateway(_settings(tmp_path, explicit_crl=False)) as running:
        yield running


@pytest.fixture
async def gw_crl(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """``tls.crl_files`` names the development CA's CRL, the other anchor has none."""
    async with running_gateway(_settings(tmp_path, explicit_crl=True)) as running:
        yield running


def _service(gw: RunningGateway, name: str) -> Any:
    return next(s for s in gw.gw.services if s.name == name)


def _issue(gw: RunningGateway, kind: str, **kw: Any) -> IssuedFiles:
    pki = ensure_dev_pki(gw.settings)
    return issue_certificate(pki, kind, out_dir=gw.settings.data_dir / "test-issued", **kw)


def _revoke(gw: RunningGateway, cert: IssuedFiles) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mssante"), "--data-dir", str(gw.settings.data_dir),
         "pki", "revoke", str(cert.cert_file)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr


def _relay_mail(gw: RunningGateway, peer: IssuedFiles, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.relay_port, timeout=30,
                      local_hostname=f"mx.{PEER_DOMAIN}") as client:
        client.starttls(context=gw.client_context(peer.cert_file, peer.key_file))
        client.ehlo()
        reply = client.mail(f"secretariat@{PEER_DOMAIN}")
        if reply[0] == 250:
            client.rcpt(rcpt)
        return reply


def _smtp_external(gw: RunningGateway, cert: IssuedFiles) -> tuple[int, bytes]:
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, timeout=30,
                          context=gw.client_context(cert.cert_file, cert.key_file)) as client:
        client.ehlo()
        return client.docmd("AUTH", "EXTERNAL =")


def _imap_ports(gw: RunningGateway) -> tuple[int, int]:
    server = _service(gw, "IMAP").server
    return server.port, server.tls_port


def _imap_external(gw: RunningGateway, cert: IssuedFiles) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", _imap_ports(gw)[1],
                               ssl_context=gw.client_context(cert.cert_file, cert.key_file),
                               timeout=30)
    client.authenticate("EXTERNAL", lambda _challenge: b"")
    return client


def _ldap_external(gw: RunningGateway, cert: IssuedFiles) -> subprocess.CompletedProcess[str]:
    layout = _service(gw, "directory").directory.layout
    env = {**os.environ, "LDAPTLS_CACERT": str(gw.ca_file), "LDAPTLS_REQCERT": "demand",
           "LDAPTLS_CERT": str(cert.cert_file), "LDAPTLS_KEY": str(cert.key_file)}
    return subprocess.run(
        ["ldapwhoami", "-H", layout.ldaps_url, "-Y", "EXTERNAL", "-o", "nettimeout=5"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )


async def _within(seconds: float, probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """Runs ``probe`` (blocking, in a thread) until ``done(result)``; the last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = await asyncio.to_thread(probe)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.25)


async def test_revoked_while_running_is_refused_on_every_front_end(gw: RunningGateway) -> None:
    address, _ = await gw.add_mailbox("revoque", idnat=IDNAT, name="Dr Rene Revoque")
    cps = _issue(gw, "cps", idnat=IDNAT, name="Dr Rene Revoque")
    peer = _issue(gw, "server", domain=PEER_DOMAIN, extra_names=("localhost", "127.0.0.1"))
    other_cps = _issue(gw, "cps", idnat=DEMO_IDNAT, name="Dr Camille Demo")

    # Everything works before the revocation.
    assert (await asyncio.to_thread(_relay_mail, gw, peer, address))[0] == 250
    assert (await asyncio.to_thread(_smtp_external, gw, cps))[0] == 235
    session = await asyncio.to_thread(_imap_external, gw, cps)
    assert (await asyncio.to_thread(session.select, "INBOX"))[0] == "OK"
    assert (await asyncio.to_thread(_ldap_external, gw, cps)).returncode == 0
    submission = await asyncio.to_thread(
        smtplib.SMTP_SSL, "127.0.0.1", gw.submissions_port, timeout=30,
        context=gw.client_context(cps.cert_file, cps.key_file))
    await asyncio.to_thread(submission.ehlo)
    assert (await asyncio.to_thread(submission.docmd, "AUTH", "EXTERNAL ="))[0] == 235

    started = time.monotonic()
    await asyncio.to_thread(_revoke, gw, cps)
    await asyncio.to_thread(_revoke, gw, peer)

    code, text = await _within(WITHIN, lambda: _relay_mail(gw, peer, address),
                               lambda r: r[0] != 250)
    assert code == 550, text
    assert text.startswith(b"5.7.1") and b"revoked" in text, text

    code, text = await _within(WITHIN, lambda: _smtp_external(gw, cps), lambda r: r[0] != 235)
    assert code == 535, text
    assert text.startswith(b"5.7.8") and b"revoked" in text, text

    # The submission session logged in before the revocation may not send any more.
    code, text = await asyncio.to_thread(submission.mail, address)
    assert code == 550 and text.startswith(b"5.7.1 Sending refused") and b"revoked" in text, text
    await asyncio.to_thread(submission.close)

    def imap_refused() -> str:
        try:
            client = _imap_external(gw, cps)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        client.logout()
        return ""

    refusal = await _within(WITHIN, imap_refused, bool)
    assert "AUTHENTICATIONFAILED" in refusal and "revoked" in refusal, refusal

    # The session opened before the revocation was told BYE and closed.
    def open_session_state() -> str:
        try:
            typ, _ = session.noop()
            return typ
        except (imaplib.IMAP4.abort, OSError) as exc:
            return f"closed: {exc}"

    state = await _within(WITHIN, open_session_state, lambda s: s != "OK")
    assert state.startswith("closed"), state
    assert any(b"revoked" in line for line in session.untagged_responses.get("BYE", [])) \
        or "revoked" in state, (state, session.untagged_responses)

    ldap = await _within(WITHIN, lambda: _ldap_external(gw, cps), lambda r: r.returncode != 0)
    assert ldap.returncode != 0, ldap.stdout
    assert time.monotonic() - started < 4 * WITHIN

    # Other certificates of the same CA still work, and so does the CA without a CRL.
    assert (await asyncio.to_thread(_smtp_external, gw, other_cps))[0] == 235
    assert (await asyncio.to_thread(_ldap_external, gw, other_cps)).returncode == 0
    # slapd never took an unverifiable certificate as SASL EXTERNAL identity either (before:
    # with GnuTLS, "TLSVerifyClient allow" let an expired one bind).
    expired = _issue(gw, "cps", idnat="810000000066", name="Dr Perime", expired=True)
    assert (await asyncio.to_thread(_ldap_external, gw, expired)).returncode != 0


async def test_ca_without_crl_next_to_one_with_crl(
    gw_crl: RunningGateway, tmp_path: Path
) -> None:
    """A CRL configured for one anchor made every peer of the other anchor fail the
    handshake with "unable to get certificate CRL" (crl_check = leaf)."""
    gw = gw_crl
    other = ensure_authority(tmp_path / "other-ca", "Other Operator Root CA")
    peer = issue_certificate(other, "server", domain=PEER_DOMAIN,
                             extra_names=("localhost", "127.0.0.1"), out_dir=tmp_path / "o")
    address, _ = await gw.add_mailbox("destinataire", name="Dr Dest")
    code, text = await asyncio.to_thread(_relay_mail, gw, peer, address)
    assert code == 250, text
    # slapd too: its CRL bundle names one CA only, the other CA's certificates still bind.
    other_cps = issue_certificate(other, "cps", idnat="810000000088", name="Dr Autre",
                                  out_dir=tmp_path / "o")
    ldap = await asyncio.to_thread(_ldap_external, gw, other_cps)
    assert ldap.returncode == 0, ldap.stderr
    # And the configured file is re-read: a revocation after start applies (before: only
    # the certificates revoked before start were refused).
    ours = _issue(gw, "server", domain=PEER_DOMAIN, extra_names=("localhost", "127.0.0.1"))
    assert (await asyncio.to_thread(_relay_mail, gw, ours, address))[0] == 250
    await asyncio.to_thread(_revoke, gw, ours)
    code, text = await _within(WITHIN, lambda: _relay_mail(gw, ours, address),
                               lambda r: r[0] != 250)
    assert code == 550 and b"revoked" in text, text
    code, text = await asyncio.to_thread(_relay_mail, gw, peer, address)
    assert code == 250, text
