"""Mutual TLS: client certificates verified against the anchors, peer information; CRLs are
checked after the handshake by ``trustspace.crl.CrlStore`` (its docstring says why).

Real asyncio TLS server with ``server_context``; real clients (Python's ssl through asyncio,
and ``openssl s_client``) presenting the certificates of the ``dev_pki`` fixture.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.pki import DevPkiBundle, TlsProbeServer, serve_tls
from trustspace.certs import PkiError
from trustspace.crl import CrlStore
from trustspace.pki import IssuedFiles
from trustspace.tls import client_context, idnat_from_certificate, server_context

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


async def connect(
    port: int, ctx: ssl.SSLContext, server_hostname: str = "mx.mssante.test"
) -> bytes | BaseException:
    """Connects and reads the greeting; returns it, or the error the client saw."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname),
            timeout=10,
        )
        try:
            return await asyncio.wait_for(reader.readline(), timeout=10)
        finally:
            writer.close()
    except (ssl.SSLError, OSError) as exc:
        return exc


def _client(dev_pki: DevPkiBundle, files: IssuedFiles | None, version: str) -> ssl.SSLContext:
    ctx = dev_pki.client_context(files)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def _refused(server: TlsProbeServer, result: bytes | BaseException, reason: str) -> None:
    """The client got nothing, and the server refused the handshake for ``reason``."""
    assert result == b"" or isinstance(result, BaseException), result
    assert server.failures, "the server saw no refused handshake"
    assert reason in str(server.failures[-1]), server.failure_text()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_valid_cps_accepted_with_peer_info(dev_pki: DevPkiBundle, version: str) -> None:
    async with serve_tls(server_context(dev_pki.settings, "required")) as server:
        result = await connect(server.port, _client(dev_pki, dev_pki.cps, version))
    assert result == b"hello\n"
    (peer,) = server.peers
    assert peer.version == f"TLSv{version}"
    assert peer.idnat == "810001234567"
    assert peer.fingerprint_sha256 == dev_pki.cps.fingerprint
    assert peer.subject is not None and "CN=810001234567" in peer.subject
    assert peer.not_after == dev_pki.cps.certificate.not_valid_after_utc
    assert peer.cipher and ("GCM" in peer.cipher or "CHACHA20" in peer.cipher)
    assert f"using TLSv{version}" in peer.received_clause()
    assert peer.certificate is not None and idnat_from_certificate(peer.certificate) == peer.idnat


@pytest.mark.parametrize("attr", ["app", "peer_server", "cps_adeli"])
async def test_other_valid_identities_accepted(dev_pki: DevPkiBundle, attr: str) -> None:
    files = getattr(dev_pki, attr)
    async with serve_tls(server_context(dev_pki.settings_with_crl, "required")) as server:
        result = await connect(server.port, _client(dev_pki, files, "1.3"))
    assert result == b"hello\n"
    assert server.peers[0].fingerprint_sha256 == files.fingerprint


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_missing_client_certificate_refused(dev_pki: DevPkiBundle, version: str) -> None:
    async with serve_tls(server_context(dev_pki.settings, "required")) as server:
        result = await connect(server.port, _client(dev_pki, None, version))
    _refused(server, result, "peer did not return a certificate")
    assert server.peers == []


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_unknown_ca_refused(dev_pki: DevPkiBundle, version: str) -> None:
    async with serve_tls(server_context(dev_pki.settings, "required")) as server:
        result = await connect(server.port, _client(dev_pki, dev_pki.unknown, version))
    _refused(server, result, "unable to get local issuer certificate")
    assert server.peers == []


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_expired_refused(dev_pki: DevPkiBundle, version: str) -> None:
    async with serve_tls(server_context(dev_pki.settings, "required")) as server:
        result = await connect(server.port, _client(dev_pki, dev_pki.expired, version))
    _refused(server, result, "certificate has expired")
    assert server.peers == []


async def _store(settings: object) -> CrlStore:
    store = CrlStore(settings)  # type: ignore[arg-type]
    await store.load_initial()
    return store


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_revoked_passes_handshake_and_is_refused_by_the_crl_store(
    dev_pki: DevPkiBundle, version: str
) -> None:
    """The handshake checks chain and dates; revocation is the store's verdict afterwards,
    so the front-ends can refuse in their protocol with a sentence."""
    async with serve_tls(server_context(dev_pki.settings_with_crl, "required")) as server:
        result = await connect(server.port, _client(dev_pki, dev_pki.revoked, version))
    assert result == b"hello\n"
    store = await _store(dev_pki.settings_with_crl)
    verdict = store.check(dev_pki.revoked.certificate)
    assert not verdict.ok
    assert f"serial {dev_pki.revoked.serial:x}" in verdict.reason and "revoked on" in verdict.reason
    assert store.check(dev_pki.cps.certificate).ok


async def test_crl_check_chain_mode(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    settings = dev_pki.settings_for(tmp_path, with_crl=True, tls={"crl_check": "chain"})
    store = await _store(settings)
    assert not store.check(dev_pki.revoked.certificate).ok
    assert store.check(dev_pki.cps.certificate).ok
    # chain mode: a CA without any CRL is refused (leaf mode does not check it).
    other = dev_pki.settings_for(
        tmp_path, tls={"anchors": (str(dev_pki.ca_file), str(dev_pki.unknown_ca.cert_file)),
                       "crl_files": (str(dev_pki.crl_file),), "crl_check": "chain"})
    verdict = (await _store(other)).check(dev_pki.unknown.certificate)
    assert not verdict.ok and "no revocation list" in verdict.reason
    leaf = dev_pki.settings_for(
        tmp_path, tls={"anchors": (str(dev_pki.ca_file), str(dev_pki.unknown_ca.cert_file)),
                       "crl_files": (str(dev_pki.crl_file),)})
    assert (await _store(leaf)).check(dev_pki.unknown.certificate).ok


async def test_optional_client_auth(dev_pki: DevPkiBundle) -> None:
    async with serve_tls(server_context(dev_pki.settings, "optional")) as server:
        anonymous = await connect(server.port, _client(dev_pki, None, "1.3"))
        with_cert = await connect(server.port, _client(dev_pki, dev_pki.cps, "1.3"))
        unknown = await connect(server.port, _client(dev_pki, dev_pki.unknown, "1.3"))
    assert anonymous == b"hello\n" and with_cert == b"hello\n"
    _refused(server, unknown, "unable to get local issuer certificate")
    assert [p.idnat for p in server.peers] == [None, "810001234567"]
    assert not server.peers[0].has_certificate and server.peers[0].received_clause()


async def test_client_verifies_the_server(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    # The dev server certificate, under each of its names.
    async with serve_tls(server_context(dev_pki.settings, "none")) as server:
        for name in ("mx.mssante.test", "mssante.test", "localhost", "127.0.0.1"):
            assert await connect(server.port, client_context(dev_pki.settings), name) == (
                b"hello\n"
            )
        wrong = await connect(server.port, client_context(dev_pki.settings), "hopital-b.test")
    assert isinstance(wrong, ssl.SSLCertVerificationError)
    assert "hostname mismatch" in str(wrong).lower() or "doesn't match" in str(wrong)
    # A peer operator whose certificate comes from an unknown CA.
    stranger = dev_pki.settings_for(
        tmp_path,
        tls={"cert_file": str(dev_pki.unknown_server.chain_file),
             "key_file": str(dev_pki.unknown_server.key_file)},
    )
    async with serve_tls(server_context(stranger, "none")) as server:
        result = await connect(server.port, client_context(dev_pki.settings),
                               "hopital-b.mssante.test")
    assert isinstance(result, ssl.SSLCertVerificationError)
    assert "certificate verify failed" in str(result)


async def test_operator_to_operator_mutual_tls(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    """Two operators: each presents its server certificate as client certificate."""
    peer = dev_pki.settings_for(
        tmp_path,
        tls={"cert_file": str(dev_pki.peer_server.chain_file),
             "key_file": str(dev_pki.peer_server.key_file)},
    )
    async with serve_tls(server_context(peer, "required")) as server:
        result = await connect(server.port, client_context(dev_pki.settings),
                               "hopital-b.mssante.test")
    assert result == b"hello\n"
    assert server.peers[0].subject == "CN=mx.mssante.test,O=mssante.test,C=FR"


async def test_openssl_client_certificate(dev_pki: DevPkiBundle) -> None:
    """Debian's OpenSSL client: valid certificate accepted, missing refused."""
    async with serve_tls(server_context(dev_pki.settings_with_crl, "required")) as server:
        async def s_client(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                "openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2",
                "-CAfile", str(dev_pki.ca_file), *args,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
            return proc.returncode or 0, out.decode(errors="replace")

        code, text = await s_client("-cert", str(dev_pki.cps.cert_file),
                                    "-key", str(dev_pki.cps.key_file))
        assert code == 0 and "Verify return code: 0 (ok)" in text, text
        code, text = await s_client()
        assert code != 0, text
        assert "peer did not return a certificate" in str(server.failures[-1])
    assert [p.idnat for p in server.peers] == ["810001234567"]


async def test_context_refusals_name_the_file(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    missing_anchor = dev_pki.settings_for(
        tmp_path, tls={"anchors": ("/nonexistent/anchor.pem",)}
    )
    with pytest.raises(PkiError, match="trust anchor .tls.anchors. /nonexistent/anchor.pem"):
        server_context(missing_anchor, "required")
    server_context(missing_anchor, "none")  # anchors are not needed without client auth
    missing_cert = dev_pki.settings_for(
        tmp_path, tls={"cert_file": "/nonexistent/server.pem"}
    )
    with pytest.raises(PkiError, match="/nonexistent/server.pem: file not found"):
        server_context(missing_cert, "none")
    bad_crl = tmp_path / "bad.crl"
    bad_crl.write_bytes(b"not a crl")
    broken = dev_pki.settings_for(
        tmp_path, tls={"crl_files": (str(bad_crl),)}
    )
    with pytest.raises(PkiError, match="not a valid PEM or DER CRL"):
        await _store(broken)
    mismatched = dev_pki.settings_for(
        tmp_path,
        tls={"cert_file": str(dev_pki.cps.cert_file), "key_file": str(dev_pki.app.key_file)},
    )
    with pytest.raises(PkiError, match="not usable"):
        server_context(mismatched, "none")


async def test_der_crl_is_honoured(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    crl = x509.load_pem_x509_crl(dev_pki.crl_file.read_bytes())
    der = tmp_path / "crl.der"
    der.write_bytes(crl.public_bytes(Encoding.DER))
    settings = dev_pki.settings_for(tmp_path, tls={"crl_files": (str(der),)})
    assert not (await _store(settings)).check(dev_pki.revoked.certificate).ok
