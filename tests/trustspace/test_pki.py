"""Development PKI, certificate issuing, revocation, production identity checks and the CLI."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config import Settings, load_settings
from gateway.cli import main
from tests.fixtures.pki import ALL_PORTS_EPHEMERAL, DevPkiBundle
from trustspace.certs import (
    PkiError,
    fingerprint_sha256,
    idnat_from_certificate,
    load_certificate,
    load_certificates,
    san_dns_names,
    san_ip_addresses,
    structure_from_certificate,
    verify_chain,
)
from trustspace.idnat import is_valid_idnat
from trustspace.pki import (
    ensure_authority,
    ensure_dev_pki,
    issue_certificate,
    load_server_identity,
    revoke_certificate,
)


def _settings(tmp_path: Path, **sections: dict) -> Settings:
    overrides = {k: dict(v) for k, v in ALL_PORTS_EPHEMERAL.items()}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(data_dir=tmp_path, env={}, overrides=overrides)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _openssl_verify(ca: Path, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *extra, str(cert)],
        capture_output=True, text=True, timeout=30,
    )


# -- development PKI --------------------------------------------------------------------


def test_dev_pki_created_with_private_modes(tmp_path: Path) -> None:
    pki = ensure_dev_pki(_settings(tmp_path))
    assert pki.directory == tmp_path / "pki"
    for name in ("ca.pem", "ca.key", "server.pem", "server.key", "crl.pem"):
        assert (pki.directory / name).is_file(), name
    assert _mode(pki.ca.key_file) == 0o600
    assert _mode(pki.server_key_file) == 0o600
    assert _mode(pki.directory) == 0o700
    # server.pem carries the chain: leaf then CA.
    chain = load_certificates(pki.server_cert_file)
    assert len(chain) == 2 and chain[1] == pki.ca.certificate


def test_dev_pki_is_idempotent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = ensure_dev_pki(settings)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.directory.iterdir()}
    second = ensure_dev_pki(settings)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in second.directory.iterdir()}
    assert before == after
    assert second.ca.certificate == first.ca.certificate


def test_server_certificate_reissued_when_domains_change(tmp_path: Path) -> None:
    first = ensure_dev_pki(_settings(tmp_path))
    old = load_certificate(first.server_cert_file)
    again = ensure_dev_pki(_settings(tmp_path, gateway={"domains": ("mssante.test", "b.test")}))
    new = load_certificate(again.server_cert_file)
    assert new != old and "b.test" in san_dns_names(new)
    assert again.ca.certificate == first.ca.certificate  # the CA is never replaced


def test_server_certificate_names_and_extensions(dev_pki: DevPkiBundle) -> None:
    cert = load_certificate(dev_pki.server_cert_file)
    dns = san_dns_names(cert)
    assert {"mssante.test", "mx.mssante.test", "localhost"} <= set(dns)
    assert "127.0.0.1" in san_ip_addresses(cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    ski = dev_pki.pki.ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == ski.value.digest
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=300) < lifetime <= timedelta(days=398)


def test_ca_extensions(dev_pki: DevPkiBundle) -> None:
    ca = dev_pki.pki.ca.certificate
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature


@pytest.mark.parametrize(
    ("attr", "purpose"),
    [("cps", "sslclient"), ("app", "sslclient"), ("peer_server", "sslserver"),
     ("peer_server", "sslclient")],
)
def test_each_kind_verifies_against_the_ca(dev_pki: DevPkiBundle, attr: str, purpose: str) -> None:
    files = getattr(dev_pki, attr)
    result = _openssl_verify(dev_pki.ca_file, files.cert_file, "-purpose", purpose)
    assert result.returncode == 0, result.stderr
    chain = verify_chain(files.certificate, [], [dev_pki.pki.ca.certificate])
    assert chain[-1] == dev_pki.pki.ca.certificate


def test_dev_server_certificate_verifies_for_both_uses(dev_pki: DevPkiBundle) -> None:
    for purpose in ("sslserver", "sslclient"):
        result = _openssl_verify(dev_pki.ca_file, dev_pki.server_cert_file, "-purpose", purpose)
        assert result.returncode == 0, result.stderr


def test_unknown_ca_certificate_does_not_verify(dev_pki: DevPkiBundle) -> None:
    result = _openssl_verify(dev_pki.ca_file, dev_pki.unknown.cert_file)
    assert result.returncode != 0
    with pytest.raises(PkiError, match="does not chain to a configured trust anchor"):
        verify_chain(dev_pki.unknown.certificate, [], [dev_pki.pki.ca.certificate])


def test_idnat_round_trip(dev_pki: DevPkiBundle) -> None:
    cert = dev_pki.cps.certificate
    assert idnat_from_certificate(cert) == "810001234567"
    assert dev_pki.cps.idnat == "810001234567"
    assert idnat_from_certificate(dev_pki.cps_adeli.certificate) == "0123456789"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "810001234567"
    assert cert.subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "Martin"
    assert cert.subject.get_attributes_for_oid(NameOID.GIVEN_NAME)[0].value == "Alice"
    # From DER bytes, as a TLS stack hands it over.
    der = dev_pki.cps.cert_file.read_bytes()
    assert idnat_from_certificate(x509.load_pem_x509_certificate(der)) == "810001234567"
    assert idnat_from_certificate(dev_pki.app.certificate) is None
    assert structure_from_certificate(dev_pki.app.certificate) == "310000000"


def test_idnat_read_from_slash_form_and_serial_number(dev_pki: DevPkiBundle) -> None:
    """Profiles that write ``CN=<idNatPS>/<name>`` or use serialNumber are recognised."""
    ca = dev_pki.pki.ca
    for attrs in (
        [x509.NameAttribute(NameOID.COMMON_NAME, "810001234567/MARTIN Alice")],
        [x509.NameAttribute(NameOID.COMMON_NAME, "Alice Martin"),
         x509.NameAttribute(NameOID.SERIAL_NUMBER, "810001234567")],
    ):
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name(attrs))
            .issuer_name(ca.certificate.subject).public_key(ca.private_key.public_key())
            .serial_number(1).not_valid_before(datetime.now(UTC))
            .not_valid_after(datetime.now(UTC) + timedelta(days=1))
            .sign(ca.private_key, hashes.SHA256())
        )
        assert idnat_from_certificate(cert) == "810001234567"


@pytest.mark.parametrize(
    "value", ["81000123456", "8100012345678", "710001234567", "012345678", "01234567890",
              "8100012345a7", "", " 810001234567"],
)
def test_malformed_idnat_refused(dev_pki: DevPkiBundle, tmp_path: Path, value: str) -> None:
    assert not is_valid_idnat(value)
    if not value:
        with pytest.raises(PkiError, match="requires an idNatPS"):
            issue_certificate(dev_pki.pki, "cps", idnat=value, name="X", out_dir=tmp_path)
        return
    with pytest.raises(PkiError, match=f"idNatPS {value!r} is not valid"):
        issue_certificate(dev_pki.pki, "cps", idnat=value, name="X", out_dir=tmp_path)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("cps", {"name": "Dr Alice Martin"}, "kind cps requires an idNatPS"),
        ("cps", {"idnat": "810001234567"}, "kind cps requires the professional's name"),
        ("app", {}, "kind app requires a structure identifier"),
        ("app", {"structure": "31000"}, "structure identifier '31000' is not valid"),
        ("server", {}, "kind server requires the operator's domain"),
        ("server", {"domain": "bad_domain..test"}, "domain 'bad_domain..test' is not valid"),
        ("server", {"domain": "localhost"}, "domain 'localhost' is not valid: expected a fully"),
        ("person", {}, "certificate kind 'person' is not valid"),
    ],
)
def test_issue_refusals(
    dev_pki: DevPkiBundle, tmp_path: Path, kind: str, kwargs: dict, message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        issue_certificate(dev_pki.pki, kind, out_dir=tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_issued_files_and_pkcs12(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    files = issue_certificate(
        dev_pki.pki, "app", structure="310000000", out_dir=tmp_path, password="s3cret-p12"
    )
    assert _mode(files.key_file) == 0o600 and _mode(files.p12_file) == 0o600
    chain = load_certificates(files.chain_file)
    assert chain == [files.certificate, dev_pki.pki.ca.certificate]
    key, cert, extra = pkcs12.load_key_and_certificates(files.p12_file.read_bytes(), b"s3cret-p12")
    assert cert == files.certificate and extra == [dev_pki.pki.ca.certificate] and key is not None
    # Real OpenSSL reads the bundle too (what Thunderbird/Outlook import).
    out = subprocess.run(
        ["openssl", "pkcs12", "-in", str(files.p12_file), "-passin", "pass:s3cret-p12",
         "-nokeys", "-clcerts"], capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0 and "BEGIN CERTIFICATE" in out.stdout
    generated = issue_certificate(dev_pki.pki, "app", structure="31000000000014", out_dir=tmp_path)
    assert len(generated.p12_password) >= 20
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(generated.p12_file.read_bytes(), b"wrong")


def test_unicode_domain_is_encoded_as_a_label(dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    files = issue_certificate(
        dev_pki.pki, "server", domain="hôpital.mssante.test", out_dir=tmp_path
    )
    assert "xn--hpital-ixa.mssante.test" in san_dns_names(files.certificate)


def test_expired_certificate(dev_pki: DevPkiBundle) -> None:
    cert = dev_pki.expired.certificate
    assert cert.not_valid_after_utc < datetime.now(UTC)
    result = _openssl_verify(dev_pki.ca_file, dev_pki.expired.cert_file)
    assert result.returncode != 0 and "expired" in result.stdout + result.stderr
    with pytest.raises(PkiError, match="expired on"):
        verify_chain(cert, [], [dev_pki.pki.ca.certificate])


def test_revoked_certificate_in_crl(dev_pki: DevPkiBundle) -> None:
    crl = x509.load_pem_x509_crl(dev_pki.crl_file.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(dev_pki.revoked.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(dev_pki.cps.serial) is None
    assert crl.is_signature_valid(dev_pki.pki.ca.private_key.public_key())
    result = _openssl_verify(
        dev_pki.ca_file, dev_pki.revoked.cert_file, "-crl_check", "-CRLfile", str(dev_pki.crl_file)
    )
    assert result.returncode != 0 and "revoked" in result.stdout + result.stderr
    ok = _openssl_verify(
        dev_pki.ca_file, dev_pki.cps.cert_file, "-crl_check", "-CRLfile", str(dev_pki.crl_file)
    )
    assert ok.returncode == 0, ok.stderr


def test_revoke_is_idempotent_and_refuses_foreign_certificates(tmp_path: Path) -> None:
    pki = ensure_dev_pki(_settings(tmp_path))
    files = issue_certificate(pki, "cps", idnat="810001234567", name="A B", out_dir=tmp_path / "o")
    revoke_certificate(pki, files.cert_file)
    revoke_certificate(pki, files.cert_file)
    crl = x509.load_pem_x509_crl(pki.crl_file.read_bytes())
    assert len(list(crl)) == 1
    other = ensure_authority(tmp_path / "other", "Other CA")
    foreign = issue_certificate(other, "cps", idnat="810001234567", name="A B", out_dir=tmp_path)
    with pytest.raises(PkiError, match="was not issued by the local CA"):
        revoke_certificate(pki, foreign.cert_file)


# -- production mode --------------------------------------------------------------------


def _production(tmp_path: Path, dev_pki: DevPkiBundle, **tls: object) -> Settings:
    values = {
        "cert_file": str(dev_pki.peer_server.chain_file),
        "key_file": str(dev_pki.peer_server.key_file),
        "anchors": (str(dev_pki.ca_file),),
        **tls,
    }
    return _settings(tmp_path, gateway={"mode": "production"}, tls=values)


def test_production_never_creates_a_ca(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    settings = _production(tmp_path, dev_pki)
    with pytest.raises(PkiError, match="production: no local CA is created"):
        ensure_dev_pki(settings)
    assert not (tmp_path / "pki").exists()
    identity = load_server_identity(settings)
    assert identity.certificate == dev_pki.peer_server.certificate
    assert identity.chains_to_anchor


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"cert_file": "/nonexistent/server.pem"},
         r"TLS certificate \(tls.cert_file\) /nonexistent/server.pem: file not found"),
        ({"key_file": "/nonexistent/server.key"}, "private key /nonexistent/server.key: file not"),
        ({"anchors": ("/nonexistent/ca.pem",)}, r"trust anchor \(tls.anchors\) /nonexistent"),
        ({"crl_files": ("/nonexistent/crl.pem",)}, "CRL /nonexistent/crl.pem: file not found"),
    ],
)
def test_production_identity_missing_files(
    tmp_path: Path, dev_pki: DevPkiBundle, tls: dict, message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        load_server_identity(_production(tmp_path, dev_pki, **tls))


def test_production_identity_garbage_and_mismatch(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(PkiError, match=f"{garbage}: not a valid PEM or DER certificate"):
        load_server_identity(_production(tmp_path, dev_pki, cert_file=str(garbage)))
    with pytest.raises(PkiError, match="does not match the certificate"):
        load_server_identity(
            _production(tmp_path, dev_pki, key_file=str(dev_pki.cps.key_file))
        )
    with pytest.raises(PkiError, match="expired on"):
        load_server_identity(_production(
            tmp_path, dev_pki, cert_file=str(dev_pki.expired.cert_file),
            key_file=str(dev_pki.expired.key_file),
        ))


def test_identity_not_chaining_to_anchors_is_reported(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    identity = load_server_identity(_production(
        tmp_path, dev_pki, cert_file=str(dev_pki.unknown_server.chain_file),
        key_file=str(dev_pki.unknown_server.key_file),
    ))
    assert not identity.chains_to_anchor


# -- command line -----------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path), *args], env={"MSSANTE_HOME": None}
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_issue_cps_and_show(tmp_path: Path) -> None:
    code, out, err = _cli(
        tmp_path, "pki", "issue", "--kind", "cps", "--idnat", "810001234567",
        "--name", "Dr Alice Martin",
    )
    assert code == 0, err
    cert_file = tmp_path / "pki" / "issued" / "cps-810001234567.pem"
    assert cert_file.is_file()
    assert "pkcs12 password (shown once): " in out
    password = out.split("pkcs12 password (shown once): ")[1].strip()
    p12 = (tmp_path / "pki" / "issued" / "cps-810001234567.p12").read_bytes()
    assert pkcs12.load_key_and_certificates(p12, password.encode())[1] is not None

    code, out, err = _cli(tmp_path, "pki", "show", str(cert_file))
    assert code == 0, err
    assert "idNatPS:     810001234567" in out
    assert fingerprint_sha256(load_certificate(cert_file)) in out
    assert "valid, chains to a configured trust anchor" in out

    code, out, err = _cli(tmp_path, "pki", "revoke", str(cert_file))
    assert code == 0, err
    code, out, err = _cli(tmp_path, "pki", "show", str(cert_file))
    assert "NOT TRUSTED" in out and "revoked" in out


def test_cli_issue_app_and_server_with_password(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = _cli(tmp_path, "pki", "issue", "--kind", "app", "--structure", "310000000",
                          "--out", str(out_dir), "--p12-password", "given-pass")
    assert code == 0, err
    assert "given-pass" not in out and "shown once" not in out
    assert (out_dir / "app-310000000.p12").is_file()
    code, out, err = _cli(tmp_path, "pki", "issue", "--kind", "server",
                          "--domain", "hopital-b.mssante.test", "--out", str(out_dir))
    assert code == 0, err
    cert = load_certificate(out_dir / "server-hopital-b.mssante.test.pem")
    assert "hopital-b.mssante.test" in san_dns_names(cert)


def test_cli_issue_server_with_other_names(tmp_path: Path) -> None:
    """A peer reached at another host name or an address can carry them (--alt-name)."""
    out_dir = tmp_path / "out"
    code, _out, err = _cli(tmp_path, "pki", "issue", "--kind", "server",
                           "--domain", "hopital-b.mssante.test", "--out", str(out_dir),
                           "--alt-name", "relay.hopital-b.example", "--alt-name", "127.0.0.2")
    assert code == 0, err
    cert = load_certificate(out_dir / "server-hopital-b.mssante.test.pem")
    assert "relay.hopital-b.example" in san_dns_names(cert)
    assert "127.0.0.2" in [str(a) for a in san_ip_addresses(cert)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kind", "cps", "--idnat", "81000123456", "--name", "X"], "'81000123456'"),
        (["--kind", "cps", "--idnat", "0123", "--name", "X"], "'0123'"),
        (["--kind", "cps", "--name", "X"], "requires an idNatPS (--idnat)"),
        (["--kind", "app"], "(--structure)"),
        (["--kind", "server"], "(--domain)"),
        (["--kind", "server", "--domain", "exa mple.test"], "'exa mple.test'"),
        (["--kind", "nurse"], "'nurse'"),
        (["--kind", "cps", "--idnat", "810001234567", "--name", "X", "--alt-name", "a.test"],
         "--alt-name 'a.test': only server certificates"),
        (["--kind", "server", "--domain", "b.test", "--alt-name", "bad name.test"],
         "'bad name.test'"),
    ],
)
def test_cli_issue_bad_input_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    code, _out, err = _cli(tmp_path, "pki", "issue", *args)
    assert code == 2
    assert needle in err


def test_cli_refuses_in_production_mode(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    (tmp_path / "mssante.toml").write_text(
        '[gateway]\nmode = "production"\n[tls]\n'
        f'cert_file = "{dev_pki.peer_server.chain_file}"\n'
        f'key_file = "{dev_pki.peer_server.key_file}"\n'
        f'anchors = ["{dev_pki.ca_file}"]\n'
    )
    code, _out, err = _cli(tmp_path, "pki", "issue", "--kind", "app", "--structure", "310000000")
    assert code == 2 and "production" in err and "no local CA" in err
    assert not (tmp_path / "pki").exists()
    code, _out, err = _cli(tmp_path, "pki", "revoke", str(dev_pki.cps.cert_file))
    assert code == 2 and "production" in err


def test_cli_show_and_revoke_bad_files(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    code, _out, err = _cli(tmp_path, "pki", "show", str(tmp_path / "missing.pem"))
    assert code == 2 and "missing.pem: file not found" in err
    code, _out, err = _cli(tmp_path, "pki", "revoke", str(dev_pki.unknown.cert_file))
    assert code == 2 and "was not issued by the local CA" in err


def test_installed_command_runs(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    """The real ``mssante`` entry point, as an operator runs it."""
    exe = Path(sys.executable).with_name("mssante")  # the environment's installed command
    result = subprocess.run(
        [str(exe), "--data-dir", str(tmp_path), "pki", "show", str(dev_pki.expired.cert_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "(EXPIRED)" in result.stdout and "idNatPS:     810000000002" in result.stdout
