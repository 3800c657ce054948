"""Certificate inspection: reading PEM/DER files, fingerprints, names, idNatPS, chain checks.

Every reading function raises :class:`PkiError` with one line naming the file and what is
wrong, because these errors end up on an operator's terminal at start-up (the gateway exits
non-zero with that line) and must say what to fix.

Where the idNatPS lives: IGC-Santé certificates of a health professional (CPx cards and the
"PS" software certificates) carry the national identifier as the subject's commonName, with
the person's name in surname/givenName and the structure in O/OU. Some profiles write the
commonName as ``<idNatPS>/<name>``; both are read here. The subject ``serialNumber``
attribute (2.5.4.5) is also accepted as a fallback, so that certificates issued by other
tools with the identifier there are still recognised. Only identifiers that pass
:func:`trustspace.idnat.is_valid_idnat` are returned.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from trustspace.idnat import is_valid_idnat


class PkiError(Exception):
    """A certificate, key, anchor or CRL that cannot be used; the message is one line."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} {path}: file not found") from None
    except PermissionError:
        raise PkiError(f"{what} {path}: permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise PkiError(f"{what} {path}: is a directory, expected a PEM file") from None
    except OSError as exc:
        raise PkiError(f"{what} {path}: cannot read ({exc.strerror})") from None


def load_certificates(path: Path, what: str = "certificate") -> list[x509.Certificate]:
    """All certificates of a PEM file (or one DER certificate), at least one."""
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise PkiError(f"{what} {path}: not a valid PEM or DER certificate ({exc})") from None
    if not certs:
        raise PkiError(f"{what} {path}: contains no certificate")
    return certs


def load_certificate(path: Path, what: str = "certificate") -> x509.Certificate:
    """The first certificate of a file (the leaf, for a chain file)."""
    return load_certificates(path, what)[0]


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    """A PEM (or DER) private key."""
    data = _read(path, "private key")
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)
    except TypeError:
        raise PkiError(f"private key {path}: is encrypted; provide it unencrypted") from None
    except ValueError as exc:
        raise PkiError(f"private key {path}: not a valid private key ({exc})") from None


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A CRL in PEM or DER form."""
    data = _read(path, "CRL")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PkiError(f"CRL {path}: not a valid PEM or DER CRL ({exc})") from None


def public_key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """True when ``key`` is the private half of the certificate's public key."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def fingerprint_sha256(cert: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex without separators (for proofs, lookups)."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


_SHORT_NAMES = {
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.TITLE: "title",
}
"""Short names RFC 4514 does not list but every PKI tool shows (instead of dotted OIDs)."""


def subject_text(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string (what Received headers and logs show)."""
    return cert.subject.rfc4514_string(_SHORT_NAMES)


def issuer_text(cert: x509.Certificate) -> str:
    return cert.issuer.rfc4514_string(_SHORT_NAMES)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def common_name(cert: x509.Certificate) -> str | None:
    values = _attr(cert.subject, NameOID.COMMON_NAME)
    return values[0] if values else None


def idnat_from_certificate(cert: x509.Certificate | bytes) -> str | None:
    """The idNatPS a certificate carries (see the module docstring), or ``None``."""
    if isinstance(cert, bytes):
        cert = x509.load_der_x509_certificate(cert)
    candidates = [cn.split("/", 1)[0].strip() for cn in _attr(cert.subject, NameOID.COMMON_NAME)]
    candidates += _attr(cert.subject, NameOID.SERIAL_NUMBER)
    for value in candidates:
        if is_valid_idnat(value):
            return value
    return None


def structure_from_certificate(cert: x509.Certificate) -> str | None:
    """The structure identifier (FINESS/SIRET) of an organisation certificate: its OU."""
    values = _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    return values[0] if values else None


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def san_dns_names(cert: x509.Certificate) -> list[str]:
    san = _san(cert)
    return san.get_values_for_type(x509.DNSName) if san else []


def san_ip_addresses(cert: x509.Certificate) -> list[str]:
    san = _san(cert)
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] if san else []


def policy_oids(cert: x509.Certificate) -> list[str]:
    """The certificate policy OIDs (RFC 5280 §4.2.1.4) in dotted form, in certificate order."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [p.policy_identifier.dotted_string for p in ext]


def extended_key_usages(cert: x509.Certificate) -> set[str] | None:
    """The extended key usage OIDs, or ``None`` when the extension is absent.

    RFC 5280 §4.2.1.12: without the extension the key is not restricted by purpose; the
    callers that need a purpose (relay, EXTERNAL) treat ``None`` as "not shown" and refuse.
    """
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return {oid.dotted_string for oid in ext}


def allows_digital_signature(cert: x509.Certificate) -> bool:
    """True unless a keyUsage extension is present without digitalSignature.

    TLS client authentication signs the handshake (RFC 8446 §4.4.3), so a key whose usage
    excludes digitalSignature cannot have authenticated a TLS client legitimately.
    """
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.digital_signature)


def covers_name(cert: x509.Certificate, name: str) -> bool:
    """True when the SAN covers a host name or IP address (exact or one-label wildcard)."""
    try:
        return ipaddress.ip_address(name) in {
            ipaddress.ip_address(i) for i in san_ip_addresses(cert)
        }
    except ValueError:
        pass
    host = name.lower().rstrip(".")
    for dns in san_dns_names(cert):
        dns = dns.lower()
        if dns == host:
            return True
        # RFC 6125 §6.4.3: a wildcard matches exactly one left-most label.
        if dns.startswith("*.") and host.partition(".")[2] == dns[2:] and "." in host:
            return True
    return False


def is_expired(cert: x509.Certificate, at: datetime | None = None) -> bool:
    now = at or datetime.now(UTC)
    return not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc)


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Iterable[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList] = (),
    at: datetime | None = None,
) -> list[x509.Certificate]:
    """Checks that ``leaf`` chains to one of ``anchors``; returns the chain, leaf first.

    A deliberately small path builder (RFC 5280 §6 subset: signatures, validity periods,
    basicConstraints on issuers, revocation against the given CRLs) for offline checks such
    as ``mssante pki show`` and start-up consistency; live TLS peers are verified by OpenSSL
    through the contexts of :mod:`trustspace.tls`. Raises :class:`PkiError` saying why not.
    """
    now = at or datetime.now(UTC)
    anchor_list = list(anchors)
    crl_list = list(crls)
    pool = list(intermediates)
    chain = [leaf]
    current = leaf
    for _depth in range(8):
        _check_one(current, now, crl_list)
        for anchor in anchor_list:
            if _issued_by(current, anchor):
                if anchor != current:
                    _check_validity(anchor, now)
                    chain.append(anchor)
                return chain
        issuer = next((c for c in pool if c != current and _issued_by(current, c)), None)
        if issuer is None:
            raise PkiError(
                f"certificate {subject_text(current)!r} (issuer {issuer_text(current)!r}) "
                "does not chain to a configured trust anchor"
            )
        _check_issuer(issuer)
        chain.append(issuer)
        current = issuer
    raise PkiError(f"certificate chain of {subject_text(leaf)!r} is too long")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    if now > cert.not_valid_after_utc:
        raise PkiError(
            f"certificate {subject_text(cert)!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    if now < cert.not_valid_before_utc:
        raise PkiError(
            f"certificate {subject_text(cert)!r} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d}"
        )


def _check_one(
    cert: x509.Certificate, now: datetime, crls: list[x509.CertificateRevocationList]
) -> None:
    _check_validity(cert, now)
    for crl in crls:
        if crl.issuer == cert.issuer and crl.get_revoked_certificate_by_serial_number(
            cert.serial_number
        ):
            raise PkiError(f"certificate {subject_text(cert)!r} is revoked")


def _check_issuer(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise PkiError(f"certificate {subject_text(cert)!r} is not a CA but issues certificates")
