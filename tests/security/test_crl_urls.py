"""``tls.crl_urls``: CRLs fetched over HTTPS, refreshed, the last good one kept on failure.

A real HTTPS server on loopback (the development PKI's server certificate) serves CRLs
signed by the development CA; the gateway-level test relays through a running gateway.
Before: there was no way to fetch a CRL at all (no ``crl_urls`` setting), and an expired
CRL made OpenSSL refuse every certificate of its CA whatever the operator wanted.
"""

from __future__ import annotations

import asyncio
import http.server
import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from trustspace.crl import CrlStore
from trustspace.pki import CertificateAuthority, ensure_dev_pki, issue_certificate

pytestmark = pytest.mark.timeout(120)

PEER_DOMAIN = "hopital-b.mssante.test"


def make_crl(ca: CertificateAuthority, serials: list[int], *, age: timedelta = timedelta(0),
             valid: timedelta = timedelta(days=7), key: Any = None) -> bytes:
    """A CRL of ``ca`` (signed with ``key`` if given: a forgery) revoking ``serials``."""
    now = datetime.now(UTC) - age
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + valid)
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - timedelta(minutes=1)).build())
    crl = builder.sign(key or ca.private_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


@dataclass
class CrlServer:
    """What the HTTPS server answers; tests change it between fetches."""

    status: int = 200
    body: bytes = b""
    hits: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def crl_server(dev_pki: DevPkiBundle) -> Iterator[CrlServer]:
    state = CrlServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            with state.lock:
                state.hits += 1
                status, body = state.status, state.body
            self.send_response(status)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(dev_pki.server_cert_file, dev_pki.server_key_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"https://127.0.0.1:{server.server_address[1]}/crl/ac-test.crl"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _store(dev_pki: DevPkiBundle, tmp_path: Path, url: str, **tls: Any) -> CrlStore:
    settings = dev_pki.settings_for(tmp_path, tls={"crl_urls": (url,), **tls})
    return CrlStore(settings)


async def test_url_crl_used_and_kept_when_fetch_fails(
    dev_pki: DevPkiBundle, crl_server: CrlServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca = dev_pki.pki.ca
    crl_server.body = make_crl(ca, [dev_pki.cps.serial])
    store = _store(dev_pki, tmp_path, crl_server.url)
    await store.load_initial()
    refused = store.check(dev_pki.cps.certificate)
    assert not refused.ok and "revoked" in refused.reason
    assert store.check(dev_pki.app.certificate).ok
    # The embedded CA's own pki/crl.pem is not ours here (another data dir): only the URL.
    assert [c.source for c in store.crls] == [crl_server.url]

    # The server fails, then serves garbage, then a forgery without the revocation: the
    # last good list stays in force each time.
    forged_key = ec.generate_private_key(ec.SECP256R1())
    for status, body in ((503, b"down"), (200, b"not a crl"),
                         (200, make_crl(ca, [], key=forged_key))):
        crl_server.status, crl_server.body = status, body
        hits = crl_server.hits
        await store.refresh(fetch=True)
        assert crl_server.hits == hits + 1
        assert not store.check(dev_pki.cps.certificate).ok, (status, body[:20])
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "crl_fetch_failed" in logged and "HTTP 503" in logged, logged
    assert "signature does not verify" in logged, logged

    # An older list (a replayed copy) does not replace a newer one either.
    crl_server.status, crl_server.body = 200, make_crl(ca, [], age=timedelta(hours=2))
    await store.refresh(fetch=True)
    assert not store.check(dev_pki.cps.certificate).ok

    # A restart while the server is down starts from the cached copy.
    crl_server.status, crl_server.body = 500, b""
    restarted = _store(dev_pki, tmp_path, crl_server.url)
    await restarted.load_initial()
    assert not restarted.check(dev_pki.cps.certificate).ok

    # A newer list that no longer names the certificate (un-revoked: certificateHold lifted).
    crl_server.status, crl_server.body = 200, make_crl(ca, [dev_pki.app.serial])
    assert await store.refresh(fetch=True)
    assert store.check(dev_pki.cps.certificate).ok
    assert not store.check(dev_pki.app.certificate).ok


@pytest.mark.parametrize("policy", ["default", "refuse", "accept"])
async def test_expired_crl_policy(
    dev_pki: DevPkiBundle, crl_server: CrlServer, tmp_path: Path, policy: str
) -> None:
    """Past nextUpdate with no newer list: refuse (fail-closed, the default) or accept."""
    crl_server.body = make_crl(dev_pki.pki.ca, [dev_pki.cps.serial], age=timedelta(days=10))
    tls = {} if policy == "default" else {"crl_expired": policy}
    store = _store(dev_pki, tmp_path, crl_server.url, **tls)
    await store.load_initial()
    good = store.check(dev_pki.app.certificate)
    revoked = store.check(dev_pki.cps.certificate)
    assert not revoked.ok
    if policy == "accept":
        assert good.ok
    else:
        assert not good.ok and "expired" in good.reason, good


async def test_url_revocation_reaches_running_relay(
    dev_pki: DevPkiBundle, crl_server: CrlServer, tmp_path: Path
) -> None:
    """A CRL published at the URL while the gateway runs refuses the relay within 10 s."""
    settings = gateway_settings(tmp_path / "gw", tls={
        "crl_urls": (crl_server.url,), "crl_refresh": 5,
        # The HTTPS server's certificate comes from the shared dev PKI: trust it too.
        "anchors": (str(tmp_path / "gw" / "pki" / "ca.pem"), str(dev_pki.ca_file)),
    })
    pki = ensure_dev_pki(settings)  # created now so that the test can sign its CRLs
    crl_server.body = make_crl(pki.ca, [])
    peer = issue_certificate(pki, "server", domain=PEER_DOMAIN,
                             extra_names=("localhost", "127.0.0.1"), out_dir=tmp_path / "iss")
    async with running_gateway(settings) as gw:
        address, _ = await gw.add_mailbox("dest", name="Dr Dest")

        def relay() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", gw.relay_port, timeout=30,
                              local_hostname=f"mx.{PEER_DOMAIN}") as client:
                client.starttls(context=gw.client_context(peer.cert_file, peer.key_file))
                client.ehlo()
                return client.mail(f"secretariat@{PEER_DOMAIN}")

        assert (await asyncio.to_thread(relay))[0] == 250
        crl_server.body = make_crl(pki.ca, [peer.serial])
        deadline = time.monotonic() + 10
        while True:
            code, text = await asyncio.to_thread(relay)
            if code != 250 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert code == 550 and b"revoked" in text, text


async def test_embedded_ca_crl_renewed_while_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The development CA's CRL is renewed before nextUpdate without a restart (with the
    default crl_expired = refuse, an expired one would refuse every certificate of it)."""
    from config import load_settings
    from trustspace import crl as crl_module

    settings = load_settings(data_dir=tmp_path, env={}, overrides={
        "tls": {"crl_file_check_interval": 0.1}})
    pki = ensure_dev_pki(settings)
    pki.crl_file.write_bytes(make_crl(pki.ca, [], age=timedelta(days=1), valid=timedelta(days=3)))
    store = CrlStore(settings)
    await store.load_initial()
    (loaded,) = store.crls
    assert loaded.next_update is not None
    assert loaded.next_update - datetime.now(UTC) < timedelta(days=3)
    monkeypatch.setattr(crl_module, "DEV_CRL_RENEW_EVERY", 0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(store.run(stop))
    try:
        async with asyncio.timeout(10):
            while True:
                (loaded,) = store.crls
                assert loaded.next_update is not None
                if loaded.next_update - datetime.now(UTC) > timedelta(days=20):
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
