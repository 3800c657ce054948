"""The managed slapd's LDAPS and StartTLS ports: TLS 1.2+ with AEAD suites only.

Debian's slapd is built with GnuTLS, which ignores OpenSSL-style settings: before the
GnuTLS priority string was set, both ports accepted TLS 1.0, TLS 1.1 and CBC suites such as
ECDHE-ECDSA-AES256-SHA although the generated configuration said ``TLSProtocolMin 3.3``.
Probed with Debian's ``openssl s_client`` (security level 0 on the client side, so that the
client offers what an old or hostile client would).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.slapd import SlapdHandle


def _handshake(handle: SlapdHandle, starttls: bool, *args: str) -> tuple[bool, str]:
    port = handle.layout.port if starttls else handle.layout.ldaps_port
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
               "-CAfile", str(handle.ca_file), *args]
    if starttls:
        command += ["-starttls", "ldap"]
    done = subprocess.run(command, input=b"", capture_output=True, timeout=30, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    established = done.returncode == 0 and "Cipher is (NONE)" not in out and (
        "Cipher is " in out or "Cipher    :" in out)
    return established, out


PORTS = [pytest.param(False, id="ldaps"), pytest.param(True, id="starttls")]
OLD = "DEFAULT:@SECLEVEL=0"


@pytest.mark.parametrize("starttls", PORTS)
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_before_1_2_refused(managed_slapd: SlapdHandle, starttls: bool, version: str) -> None:
    ok, out = _handshake(managed_slapd, starttls, version, "-cipher", OLD)
    assert not ok, out


@pytest.mark.parametrize("starttls", PORTS)
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
                                    "ECDHE-ECDSA-AES256-SHA384"])
def test_cbc_suites_refused(managed_slapd: SlapdHandle, starttls: bool, cipher: str) -> None:
    ok, out = _handshake(managed_slapd, starttls, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0")
    assert not ok, out


@pytest.mark.parametrize("starttls", PORTS)
@pytest.mark.parametrize("args", [
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("-tls1_3",),
], ids=["tls12-aes256gcm", "tls12-aes128gcm", "tls12-chacha20", "tls13"])
def test_aead_suites_accepted(
    managed_slapd: SlapdHandle, starttls: bool, args: tuple[str, ...]
) -> None:
    ok, out = _handshake(managed_slapd, starttls, *args)
    assert ok, out
