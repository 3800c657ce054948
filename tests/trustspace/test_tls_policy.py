"""TLS policy of the gateway's contexts, probed from outside with OpenSSL and testssl.sh.

A real asyncio TLS server runs ``server_context`` on an ephemeral loopback port; Debian's
``openssl s_client`` (and ``testssl``) try every protocol version and every TLS 1.2 cipher
suite OpenSSL knows, so the test checks what a peer can actually negotiate, not our flags.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from pathlib import Path

import pytest

from config import Settings
from tests.fixtures.pki import DevPkiBundle, serve_tls
from trustspace.pki import issue_certificate
from trustspace.tls import client_context, server_context

# RFC 7525 §4.2 / the gateway policy: ECDHE + AEAD only in TLS 1.2.
EXPECTED_TLS12_ECDSA = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
}
EXPECTED_TLS12_RSA = {
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


async def s_client(port: int, *args: str) -> tuple[bool, str]:
    """Runs ``openssl s_client``; True when a handshake completed with a cipher."""
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    text = out.decode(errors="replace")
    return proc.returncode == 0 and "Cipher is (NONE)" not in text, text


def _tls12_cipher_names() -> list[str]:
    """Every TLS 1.2-and-older suite this OpenSSL implements, weak ones included."""
    out = subprocess.run(
        ["openssl", "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()
    return [c for c in out.split(":") if c and not c.startswith("TLS_")]


async def _accepted_tls12_ciphers(port: int, ca: Path) -> set[str]:
    names = _tls12_cipher_names()
    assert len(names) > 40  # the probe really covers CBC, RSA key exchange, PSK, …
    gate = asyncio.Semaphore(8)

    async def probe(name: str) -> str | None:
        async with gate:
            ok, _ = await s_client(
                port, "-tls1_2", "-cipher", f"{name}:@SECLEVEL=0", "-CAfile", str(ca)
            )
        return name if ok else None

    results = await asyncio.gather(*(probe(n) for n in names))
    return {r for r in results if r}


@pytest.fixture(scope="module")
def rsa_settings(dev_pki: DevPkiBundle, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose server certificate has an RSA 3072 key (RSA suites must obey too)."""
    out = tmp_path_factory.mktemp("rsa")
    files = issue_certificate(
        dev_pki.pki, "server", domain="mssante.test", extra_names=("localhost", "127.0.0.1"),
        out_dir=out, key_type="rsa",
    )
    return dev_pki.settings_for(
        out / "data", tls={"cert_file": str(files.chain_file), "key_file": str(files.key_file)}
    )


@pytest.mark.parametrize(
    ("flag", "accepted"),
    [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)],
)
async def test_protocol_versions(dev_pki: DevPkiBundle, flag: str, accepted: bool) -> None:
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        # SECLEVEL=0 so that the client itself is willing to offer the old versions.
        ok, text = await s_client(
            server.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(dev_pki.ca_file)
        )
    assert ok is accepted, text
    if accepted:
        assert "Verify return code: 0 (ok)" in text
        assert "Compression: NONE" in text or flag == "-tls1_3"


async def test_tls12_only_ecdhe_aead_ecdsa(dev_pki: DevPkiBundle) -> None:
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        accepted = await _accepted_tls12_ciphers(server.port, dev_pki.ca_file)
    assert accepted == EXPECTED_TLS12_ECDSA


async def test_tls12_only_ecdhe_aead_rsa(dev_pki: DevPkiBundle, rsa_settings: Settings) -> None:
    async with serve_tls(server_context(rsa_settings, "none")) as server:
        accepted = await _accepted_tls12_ciphers(server.port, dev_pki.ca_file)
        for weak in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256",
                     "ECDHE-RSA-AES256-SHA", "DHE-RSA-AES128-GCM-SHA256"):
            ok, _ = await s_client(server.port, "-tls1_2", "-cipher", f"{weak}:@SECLEVEL=0")
            assert not ok, weak
    assert accepted == EXPECTED_TLS12_RSA


async def test_tls13_suites_are_aead(dev_pki: DevPkiBundle) -> None:
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                      "TLS_CHACHA20_POLY1305_SHA256"):
            ok, text = await s_client(server.port, "-tls1_3", "-ciphersuites", suite)
            assert ok and suite in text, text


async def test_server_prefers_its_own_order(dev_pki: DevPkiBundle) -> None:
    """OP_CIPHER_SERVER_PREFERENCE: a client listing AES128 first still gets AES256-GCM."""
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        ok, text = await s_client(
            server.port, "-tls1_2", "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        )
    assert ok and "Cipher is ECDHE-ECDSA-AES256-GCM-SHA384" in text, text


def test_context_flags(dev_pki: DevPkiBundle) -> None:
    for ctx in (server_context(dev_pki.settings, "required"), client_context(dev_pki.settings)):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
    server = server_context(dev_pki.settings, "none")
    assert server.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert server.verify_mode == ssl.CERT_NONE
    assert server_context(dev_pki.settings, "optional").verify_mode == ssl.CERT_OPTIONAL
    client = client_context(dev_pki.settings)
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="client_auth 'maybe'"):
        server_context(dev_pki.settings, "maybe")  # type: ignore[arg-type]


async def test_testssl_scan(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    """testssl.sh (own sockets, not only OpenSSL's list) agrees: 1.2/1.3, ECDHE AEAD only."""
    report = tmp_path / "testssl.json"
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        proc = await asyncio.create_subprocess_exec(
            "testssl", "--quiet", "--color", "0", "-p", "-E", "--jsonfile", str(report),
            f"127.0.0.1:{server.port}",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await asyncio.wait_for(proc.wait(), timeout=120)
    findings = {e["id"]: e["finding"] for e in json.loads(report.read_text())}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old] == "not offered", (old, findings[old])
    assert findings["TLS1_2"].startswith("offered")
    assert findings["TLS1_3"].startswith("offered")
    tls12 = [f for k, f in findings.items() if k.startswith("cipher-tls1_2_")]
    assert len(tls12) == 3
    assert all("ECDHE" in f and ("GCM" in f or "CHACHA20" in f) for f in tls12), tls12
    assert not [k for k in findings if k.startswith(("cipher-tls1_", "cipher-ssl"))
                and not k.startswith(("cipher-tls1_2_", "cipher-tls1_3_"))]
