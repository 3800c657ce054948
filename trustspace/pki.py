"""The development PKI (a local CA standing in for IGC-Santé) and the production identity check.

Embedded mode needs working mutual TLS on the first start, without an IGC-Santé contract, so
:func:`ensure_dev_pki` creates a local root CA and the server certificate under
``settings.pki_dir`` and reuses them on later starts. The same CA issues the certificates that
tests and demonstrations need (a professional's CPS-like certificate, an organisation's
applicative certificate, another operator's server certificate), expired ones, and a CRL.

Production mode never creates a CA: :func:`load_server_identity` only checks that the
configured certificate, key, anchors and CRLs are readable and consistent, and raises a
one-line :class:`PkiError` otherwise, which the gateway prints before exiting non-zero.

Key choice: ECDSA P-256 by default. Keys are generated in about a millisecond (RSA 3072 takes
hundreds), which keeps first start and the tests fast; P-256 with ECDHE-ECDSA-AES-GCM is
supported by every client MSSanté users run (Thunderbird, Outlook, Postfix, OpenSSL 1.1+);
and it gives 128-bit security, like RSA 3072. RSA 3072 stays available (``key_type="rsa"``)
for peers that still require RSA, as IGC-Santé's own RSA hierarchy does.

All functions here are synchronous (file I/O, key generation): they run once at start-up
before the event loop serves, or in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config import Settings
from config.settings import DEV_APPLICATION_POLICY, DEV_PERSONAL_POLICY, DEV_SERVER_POLICY
from trustspace.certs import (
    PkiError,
    covers_name,
    fingerprint_sha256,
    idnat_from_certificate,
    load_certificate,
    load_certificates,
    load_crl,
    load_private_key,
    policy_oids,
    public_key_matches,
    subject_text,
    verify_chain,
)
from trustspace.idnat import idnat_problem, structure_problem

__all__ = [
    "CertificateAuthority",
    "DevPki",
    "IssuedFiles",
    "PkiError",
    "KIND_POLICIES",
    "ServerIdentity",
    "ensure_authority",
    "ensure_dev_pki",
    "issue_certificate",
    "load_server_identity",
    "revoke_certificate",
    "validate_domain",
    "write_crl",
]

KeyType = Literal["ec", "rsa"]
Kind = Literal["cps", "app", "server"]
KINDS: tuple[str, ...] = ("cps", "app", "server")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_DAYS = 3650
"""Ten years: the development CA outlives any data directory it is created in."""
SERVER_DAYS = 397
"""TLS server certificates longer than 398 days are refused by several clients (CA/B rules)."""
PERSONAL_DAYS = 1095
"""Three years, the lifetime of IGC-Santé software certificates."""
RENEW_BEFORE = timedelta(days=30)
"""The dev server certificate is re-issued at start-up when it expires within this margin."""
CRL_DAYS = 30
CRL_RENEW_BEFORE = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)
"""notBefore is back-dated so that a peer whose clock is slightly late accepts a new cert."""

DEV_CA_NAME = "MSSante Gateway Development Root CA"

KIND_POLICIES = {
    "cps": DEV_PERSONAL_POLICY,
    "app": DEV_APPLICATION_POLICY,
    "server": DEV_SERVER_POLICY,
}
"""The certificate policy each kind is issued under, as IGC-Santé issues each family under its
own policy: the relay and SASL EXTERNAL read a certificate's use from it
(:mod:`trustspace.certprofiles`), never from the shape of its names."""


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA on disk: its certificate, key, CRL and the list of serials it has revoked."""

    directory: Path
    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    @property
    def cert_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "ca.key"

    @property
    def crl_file(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def revoked_file(self) -> Path:
        return self.directory / "revoked.txt"


@dataclass(frozen=True)
class DevPki:
    """The embedded-mode PKI: the local CA and this gateway's own server certificate."""

    ca: CertificateAuthority
    server_cert_file: Path
    server_key_file: Path

    @property
    def directory(self) -> Path:
        return self.ca.directory

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_file

    @property
    def crl_file(self) -> Path:
        return self.ca.crl_file


@dataclass(frozen=True)
class IssuedFiles:
    """What :func:`issue_certificate` wrote: certificate, key (0600), chain, PKCS#12 bundle."""

    kind: str
    cert_file: Path
    key_file: Path
    chain_file: Path
    p12_file: Path
    p12_password: str = field(repr=False)
    certificate: x509.Certificate

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.certificate)

    @property
    def subject(self) -> str:
        return subject_text(self.certificate)

    @property
    def idnat(self) -> str | None:
        return idnat_from_certificate(self.certificate)


@dataclass(frozen=True)
class ServerIdentity:
    """The checked server identity: leaf, chain, anchors and CRLs, all loaded."""

    cert_file: Path
    key_file: Path
    chain: list[x509.Certificate]
    anchors: list[x509.Certificate]
    crls: list[x509.CertificateRevocationList]
    chains_to_anchor: bool
    """False when the server certificate does not chain to the configured anchors: peers that
    trust the same anchors (the whole MSSanté space) would then refuse this server."""

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]


# -- file helpers -----------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomic write with the final mode set before any content exists (keys never 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode & 0o600)  # the data directory is private, certificates too
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> datetime:
    return datetime.now(UTC)


# -- certificate authority --------------------------------------------------------------


def ensure_authority(
    directory: Path, common_name: str = DEV_CA_NAME, *, key_type: KeyType = "ec"
) -> CertificateAuthority:
    """Loads the CA in ``directory`` or creates it (``ca.pem``, ``ca.key`` 0600, ``crl.pem``).

    Also used by tests to create a second, unknown CA that the gateway must not trust.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    if cert_file.exists() or key_file.exists():
        ca = _load_authority(directory)
    else:
        ca = _create_authority(directory, common_name, key_type)
    if _crl_needs_refresh(ca):
        write_crl(ca)
    return ca


def _load_authority(directory: Path) -> CertificateAuthority:
    cert = load_certificate(directory / "ca.pem", "CA certificate")
    key = load_private_key(directory / "ca.key")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PkiError(f"CA key {directory / 'ca.key'}: unsupported key type (use EC or RSA)")
    if not public_key_matches(cert, key):
        raise PkiError(f"CA key {directory / 'ca.key'}: does not match {directory / 'ca.pem'}")
    return CertificateAuthority(directory=directory, certificate=cert, private_key=key)


def _create_authority(directory: Path, common_name: str, key_type: KeyType) -> CertificateAuthority:
    key = _new_key(key_type)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSSante Gateway (development)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        # RFC 5280 §4.2.1.9: a CA; path length 0 because it signs end entities only.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    # Key first: a ca.pem without its key would make the next start fail.
    _write(directory / "ca.key", _key_pem(key), 0o600)
    _write(directory / "ca.pem", _pem(cert), 0o644)
    return CertificateAuthority(directory=directory, certificate=cert, private_key=key)


def _as_authority(pki: DevPki | CertificateAuthority) -> CertificateAuthority:
    return pki.ca if isinstance(pki, DevPki) else pki


# -- development PKI --------------------------------------------------------------------


def _server_names(settings: Settings) -> list[str]:
    names: list[str] = []
    for n in (*settings.gateway.domains, settings.hostname, "localhost", "127.0.0.1", "::1"):
        n = n.lower().rstrip(".")
        if n not in names:
            names.append(n)
    return names


def ensure_dev_pki(settings: Settings) -> DevPki:
    """Creates the development PKI at first start in embedded mode, reuses it afterwards.

    The server certificate is re-issued (same CA) when it is missing, no longer matches its
    key, does not cover every local domain and the host name (the configuration changed), or
    expires within :data:`RENEW_BEFORE`. Refuses in production mode: there, certificates come
    from the configuration only.
    """
    if not settings.embedded:
        raise PkiError(
            "gateway.mode is production: no local CA is created; configure tls.cert_file, "
            "tls.key_file and tls.anchors with IGC-Santé certificates"
        )
    directory = settings.pki_dir
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca = ensure_authority(directory)
    pki = DevPki(
        ca=ca, server_cert_file=directory / "server.pem", server_key_file=directory / "server.key"
    )
    names = _server_names(settings)
    if _server_needs_issue(pki, names):
        cert, key = _build_leaf(
            ca, "server", _server_subject(settings.hostname, settings.primary_domain),
            names, key_type="ec", not_before=None, not_after=None,
        )
        _write(pki.server_key_file, _key_pem(key), 0o600)
        _write(pki.server_cert_file, _pem(cert) + _pem(ca.certificate), 0o644)
    return pki


def _server_needs_issue(pki: DevPki, names: Sequence[str]) -> bool:
    if not (pki.server_cert_file.exists() and pki.server_key_file.exists()):
        return True
    try:
        cert = load_certificate(pki.server_cert_file)
        key = load_private_key(pki.server_key_file)
    except PkiError:
        return True
    if not public_key_matches(cert, key) or cert.issuer != pki.ca.certificate.subject:
        return True
    if KIND_POLICIES["server"] not in policy_oids(cert):
        return True  # issued before certificates carried their policy: peers would refuse it
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return True
    return not all(covers_name(cert, n) for n in names)


# -- issuing ----------------------------------------------------------------------------


_DOMAIN_RULE = (
    "expected a fully qualified domain name (at least two labels of letters, digits and "
    "inner hyphens, such as hopital-b.mssante.test)"
)


def validate_domain(domain: str) -> str:
    """The domain in A-label form (RFC 5890), or :class:`PkiError` naming the value.

    Unicode names are accepted (the trust-space list has some) and converted, because
    certificates carry DNS names as IA5String A-labels only (RFC 5280 §4.2.1.6).
    """
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise PkiError(f"domain {domain!r} is not valid: {_DOMAIN_RULE}") from None
    labels = ascii_name.split(".")
    ok = len(labels) >= 2 and len(ascii_name) <= 253 and all(
        0 < len(label) <= 63
        and label[0] != "-" and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )
    if not ok or labels[-1].isdigit():
        raise PkiError(f"domain {domain!r} is not valid: {_DOMAIN_RULE}")
    return ascii_name


_TITLES = {"dr", "dr.", "pr", "pr.", "docteur", "professeur", "m.", "mme", "mr", "mrs", "ms"}


def _split_person(name: str) -> tuple[str | None, str]:
    """(given name, surname) from a display name such as ``Dr Alice Martin``."""
    words = [w for w in name.split() if w.lower() not in _TITLES]
    if not words:
        return None, name.strip()
    if len(words) == 1:
        return None, words[0]
    return " ".join(words[:-1]), words[-1]


def _server_subject(common: str, organisation: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common),
    ])


def _cps_subject(idnat: str, name: str, structure: str | None) -> x509.Name:
    """Modelled on IGC-Santé "PS" certificates: the idNatPS is the commonName."""
    given, surname = _split_person(name)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if structure:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Structure {structure}"))
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure))
    attrs.append(x509.NameAttribute(NameOID.SURNAME, surname))
    if given:
        attrs.append(x509.NameAttribute(NameOID.GIVEN_NAME, given))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, idnat))
    return x509.Name(attrs)


def _app_subject(structure: str, name: str | None) -> x509.Name:
    """Modelled on IGC-Santé "ORG" certificates: structure id in OU, service name in CN."""
    service = name or f"Application {structure}"
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Structure {structure}"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure),
        x509.NameAttribute(NameOID.COMMON_NAME, service),
    ])


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _build_leaf(
    ca: CertificateAuthority,
    kind: str,
    subject: x509.Name,
    names: Sequence[str],
    *,
    key_type: KeyType,
    not_before: datetime | None,
    not_after: datetime | None,
) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key(key_type)
    now = _now()
    days = SERVER_DAYS if kind == "server" else PERSONAL_DAYS
    start = not_before or now - CLOCK_SKEW
    end = not_after or now + timedelta(days=days)
    if kind == "server":
        # Operators present their server certificate as a client certificate on the relay.
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    elif kind == "app":
        # An organisation's applicative certificate authenticates a system as a TLS client.
        ekus = [ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        ekus = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=rsa_key, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(
            x509.CertificatePolicies([
                x509.PolicyInformation(x509.ObjectIdentifier(KIND_POLICIES[kind]), None)
            ]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if names:
        # RFC 5280 §4.2.1.6 / RFC 6125: names are checked in the SAN, never in the CN.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(names)), critical=False
        )
    return builder.sign(ca.private_key, hashes.SHA256()), key


def issue_certificate(
    pki: DevPki | CertificateAuthority,
    kind: str,
    *,
    idnat: str | None = None,
    name: str | None = None,
    structure: str | None = None,
    domain: str | None = None,
    out_dir: Path,
    password: str | None = None,
    expired: bool = False,
    key_type: KeyType = "ec",
    extra_names: Sequence[str] = (),
    stem: str | None = None,
) -> IssuedFiles:
    """Issues a ``cps``, ``app`` or ``server`` certificate and writes its files in ``out_dir``.

    Files: ``<stem>.pem`` (certificate), ``<stem>.key`` (0600), ``<stem>-chain.pem``
    (certificate then CA), ``<stem>.p12`` (PKCS#12, key + certificate + CA, protected by
    ``password`` or a generated one, returned in :attr:`IssuedFiles.p12_password`).
    ``expired=True`` issues a certificate whose validity ended yesterday, for refusal tests;
    ``extra_names`` adds SAN entries to a server certificate (``localhost``, an address).
    Bad input raises :class:`PkiError` naming the value.
    """
    ca = _as_authority(pki)
    if kind not in KINDS:
        raise PkiError(f"certificate kind {kind!r} is not valid: one of {', '.join(KINDS)}")
    names: list[str] = []
    if kind == "cps":
        if not idnat:
            raise PkiError("kind cps requires an idNatPS (--idnat)")
        if (problem := idnat_problem(idnat)) is not None:
            raise PkiError(problem)
        if not name or not name.strip():
            raise PkiError("kind cps requires the professional's name (--name)")
        if structure and (problem := structure_problem(structure)) is not None:
            raise PkiError(problem)
        subject = _cps_subject(idnat, name.strip(), structure)
        default_stem = f"cps-{idnat}"
    elif kind == "app":
        if not structure:
            raise PkiError(
                "kind app requires a structure identifier, FINESS or SIRET (--structure)"
            )
        if (problem := structure_problem(structure)) is not None:
            raise PkiError(problem)
        subject = _app_subject(structure, name.strip() if name else None)
        default_stem = f"app-{structure}"
    else:
        if not domain:
            raise PkiError("kind server requires the operator's domain (--domain)")
        domain = validate_domain(domain)
        names = [domain, f"mx.{domain}"]
        for extra in extra_names:
            try:
                ipaddress.ip_address(extra)
                names.append(extra)
            except ValueError:
                names.append(validate_domain(extra) if "." in extra else extra.lower())
        subject = _server_subject(domain, name.strip() if name else domain)
        default_stem = f"server-{domain}"
    not_before = not_after = None
    if expired:
        not_before = _now() - timedelta(days=400)
        not_after = _now() - timedelta(days=1)
        default_stem += "-expired"
    cert, key = _build_leaf(
        ca, kind, subject, names, key_type=key_type, not_before=not_before, not_after=not_after
    )
    stem = stem or default_stem
    out_dir.mkdir(parents=True, exist_ok=True)
    p12_password = password if password is not None else secrets.token_urlsafe(18)
    files = IssuedFiles(
        kind=kind,
        cert_file=out_dir / f"{stem}.pem",
        key_file=out_dir / f"{stem}.key",
        chain_file=out_dir / f"{stem}-chain.pem",
        p12_file=out_dir / f"{stem}.p12",
        p12_password=p12_password,
        certificate=cert,
    )
    p12 = pkcs12.serialize_key_and_certificates(
        stem.encode(), key, cert, [ca.certificate],
        serialization.BestAvailableEncryption(p12_password.encode()),
    )
    _write(files.key_file, _key_pem(key), 0o600)
    _write(files.cert_file, _pem(cert), 0o644)
    _write(files.chain_file, _pem(cert) + _pem(ca.certificate), 0o644)
    _write(files.p12_file, p12, 0o600)
    return files


# -- revocation -------------------------------------------------------------------------


def _revoked_entries(ca: CertificateAuthority) -> dict[int, datetime]:
    entries: dict[int, datetime] = {}
    if not ca.revoked_file.exists():
        return entries
    for line in ca.revoked_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries[int(parts[0], 16)] = datetime.fromisoformat(parts[1])
    return entries


def write_crl(pki: DevPki | CertificateAuthority) -> Path:
    """(Re)writes the CA's CRL (PEM) from its revoked list; returns the CRL path.

    RFC 5280 §5: the CRL carries a CRL number and the authority key identifier, and a next
    update 30 days ahead; start-up refreshes it when less than a week is left, because
    OpenSSL refuses every certificate of an issuer whose CRL has expired.
    """
    ca = _as_authority(pki)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    for serial, when in sorted(_revoked_entries(ca).items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca.private_key, hashes.SHA256())
    _write(ca.crl_file, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca.crl_file


def _crl_needs_refresh(ca: CertificateAuthority) -> bool:
    if not ca.crl_file.exists():
        return True
    try:
        crl = load_crl(ca.crl_file)
    except PkiError:
        return True
    next_update = crl.next_update_utc
    return next_update is None or next_update - _now() < CRL_RENEW_BEFORE


def revoke_certificate(pki: DevPki | CertificateAuthority, cert_file: Path) -> Path:
    """Revokes the certificate in ``cert_file`` (issued by this CA) and rewrites the CRL."""
    ca = _as_authority(pki)
    cert = load_certificate(cert_file)
    if cert.issuer != ca.certificate.subject:
        raise PkiError(
            f"certificate {cert_file}: was not issued by the local CA "
            f"(issuer {cert.issuer.rfc4514_string()!r})"
        )
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (InvalidSignature, ValueError, TypeError):
        raise PkiError(f"certificate {cert_file}: signature does not match the local CA") from None
    entries = _revoked_entries(ca)
    if cert.serial_number not in entries:
        with ca.revoked_file.open("a") as fh:
            fh.write(f"{cert.serial_number:x} {_now().isoformat()}\n")
    return write_crl(ca)


# -- production identity ----------------------------------------------------------------


def load_server_identity(settings: Settings) -> ServerIdentity:
    """Checks the configured server certificate, key, anchors and CRLs; loads them.

    Raises :class:`PkiError` with one line naming the file and the problem: unreadable or
    malformed file, key that does not match the certificate, expired certificate, no anchor.
    """
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    chain = load_certificates(cert_file, "TLS certificate (tls.cert_file)")
    key = load_private_key(key_file)
    leaf = chain[0]
    if not public_key_matches(leaf, key):
        raise PkiError(
            f"private key {key_file}: does not match the certificate {cert_file} "
            "(tls.key_file and tls.cert_file must be a pair)"
        )
    now = _now()
    if now > leaf.not_valid_after_utc:
        raise PkiError(
            f"TLS certificate (tls.cert_file) {cert_file}: expired on "
            f"{leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    if now < leaf.not_valid_before_utc:
        raise PkiError(
            f"TLS certificate (tls.cert_file) {cert_file}: not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    anchor_files = settings.tls_anchor_files
    if not anchor_files:
        raise PkiError("no trust anchor configured (tls.anchors): peers cannot be verified")
    anchors: list[x509.Certificate] = []
    for path in anchor_files:
        anchors.extend(load_certificates(path, "trust anchor (tls.anchors)"))
    crls = [load_crl(p) for p in settings.tls_crl_files]
    try:
        verify_chain(leaf, chain[1:], anchors)
        chains = True
    except PkiError:
        chains = False
    return ServerIdentity(
        cert_file=cert_file, key_file=key_file, chain=chain, anchors=anchors, crls=crls,
        chains_to_anchor=chains,
    )
