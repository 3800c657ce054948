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


def _crafted(policies: list[str], ekus: list[x509.ObjectIdentifier] | None,
             signature: bool = True) -> x509.Certificate:
    """A certificate with exactly these policies and usages (self-signed: only read here)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.hopital-b.mssante.test")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.KeyUsage(
            digital_signature=signature, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=not signature, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
    )
    if policies:
        builder = builder.add_extension(x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]),
            critical=False)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    return builder.sign(key, hashes.SHA256())


BOTH = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize(("policies", "ekus", "signature", "reason"), [
    ([], BOTH, True, "no certificate policy"),
    ([DEV_SERVER_POLICY], [ExtendedKeyUsageOID.SERVER_AUTH], True,
     "does not allow TLS client authentication"),
    ([DEV_SERVER_POLICY], None, True, "extended key usage does not allow"),
    ([DEV_SERVER_POLICY, DEV_PERSONAL_POLICY], BOTH, True, "several uses"),
    ([DEV_SERVER_POLICY], BOTH, False, "does not allow digital signatures"),
])
def test_server_looking_certificates_of_no_family(
    policies: list[str], ekus: list[x509.ObjectIdentifier] | None, signature: bool,
    reason: str,
) -> None:
    """A server-like commonName proves nothing: the policy and key usages decide."""
    found = classify(_crafted(policies, ekus, signature), PolicyOids())
    assert found.family is Family.UNKNOWN
    assert reason in found.reason


def test_configured_igc_sante_policy_makes_a_server(tmp_path: Path) -> None:
    oid = "2.999.1"  # stands for a configured IGC-Santé policy (2.999: X.660 example arc)
    settings = load_settings(data_dir=tmp_path, env={},
                             overrides={"certificates": {"server_policies": (oid,)}})
    assert classify(_crafted([oid], BOTH), PolicyOids.from_settings(settings)).family is (
        Family.SERVER)
    assert classify(_crafted([DEV_SERVER_POLICY], BOTH),
                    PolicyOids.from_settings(settings)).family is Family.UNKNOWN
