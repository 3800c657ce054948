"""The development PKI issues each certificate kind under its own policy and key usages.

The relay and SASL EXTERNAL read a certificate's use from its policy OID and extended key
usage; these tests read them back with OpenSSL, and check that a data directory whose server
certificate predates the policies gets a new one at start-up (else peers would refuse it).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config import load_settings
from config.settings import DEV_APPLICATION_POLICY, DEV_PERSONAL_POLICY, DEV_SERVER_POLICY
from tests.fixtures.pki import ALL_PORTS_EPHEMERAL, DevPkiBundle
from trustspace.certprofiles import Family, PolicyOids, classify
from trustspace.certs import load_certificate, load_private_key, policy_oids
from trustspace.pki import ensure_dev_pki


@pytest.mark.parametrize(("which", "oid", "purposes", "family"), [
    ("cps", DEV_PERSONAL_POLICY, "TLS Web Client Authentication", Family.PERSONAL),
    ("app", DEV_APPLICATION_POLICY, "TLS Web Client Authentication", Family.APPLICATION),
    ("peer_server", DEV_SERVER_POLICY,
     "TLS Web Server Authentication, TLS Web Client Authentication", Family.SERVER),
])
def test_each_kind_has_its_policy_and_key_usage(
    dev_pki: DevPkiBundle, which: str, oid: str, purposes: str, family: Family
) -> None:
    issued = getattr(dev_pki, which)
    shown = subprocess.run(
        ["openssl", "x509", "-in", str(issued.cert_file), "-noout", "-ext",
         "certificatePolicies,extendedKeyUsage"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert f"Policy: {oid}" in shown
    assert purposes in shown
    assert classify(issued.certificate, PolicyOids()).family is family


def test_old_server_certificate_without_policy_is_reissued(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    shutil.copytree(dev_pki.settings.pki_dir, tmp_path / "pki")
    settings = load_settings(data_dir=tmp_path, env={}, overrides=ALL_PORTS_EPHEMERAL)
    pki = ensure_dev_pki(settings)
    # The server certificate as the development PKI wrote it before policies existed.
    ca_key = load_private_key(pki.ca.key_file)
    key = load_private_key(pki.server_key_file)
    old = load_certificate(pki.server_cert_file)
    now = datetime.now(UTC)
    legacy = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.hostname)]))
        .issuer_name(pki.ca.certificate.subject)
        .public_key(key.public_key())  # type: ignore[union-attr]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=300))
        .add_extension(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pki.server_cert_file.write_bytes(legacy.public_bytes(serialization.Encoding.PEM))
    assert policy_oids(load_certificate(pki.server_cert_file)) == []
    ensure_dev_pki(settings)
    assert policy_oids(load_certificate(pki.server_cert_file)) == [DEV_SERVER_POLICY]
