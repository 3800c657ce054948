"""TLS contexts for every listener and outbound connection, and what a peer presented.

One policy for the whole gateway, so that no front-end can weaken it by accident:

* TLS 1.2 minimum (MSSanté; RFC 8996 deprecates 1.0 and 1.1);
* TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only (forward
  secrecy and AEAD, RFC 7525 §4.2); TLS 1.3 suites are all AEAD (RFC 8446 §9.1);
* no compression (CRIME), no renegotiation, the server's cipher order wins;
* peers verified against ``settings.tls_anchor_files`` (IGC-Santé): chain and validity
  dates. Revocation is not left to OpenSSL: :mod:`trustspace.crl` checks the verified
  certificate after the handshake against CRLs it reloads while the gateway runs (its
  docstring says why), and the front-ends refuse in their protocol.

Building a context reads files: it runs at start-up (or on reload) before the loop serves.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509

from config import Settings
from trustspace.certs import (
    PkiError,
    fingerprint_sha256,
    idnat_from_certificate,
    issuer_text,
    subject_text,
)
from trustspace.tickets import apply_ticket_keys

__all__ = [
    "CIPHERS_TLS12",
    "ClientAuth",
    "PeerInfo",
    "client_context",
    "idnat_from_certificate",
    "peer_info",
    "server_context",
]

ClientAuth = Literal["none", "optional", "required"]

CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""OpenSSL cipher string for TLS 1.2: ECDHE with AEAD only (ECDSA or RSA certificates)."""

_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS_TLS12)
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
    )


def _load_anchors(ctx: ssl.SSLContext, settings: Settings) -> None:
    anchors = settings.tls_anchor_files
    if not anchors:
        raise PkiError("no trust anchor configured (tls.anchors): peers cannot be verified")
    for path in anchors:
        try:
            ctx.load_verify_locations(cafile=str(path))
        except FileNotFoundError:
            raise PkiError(f"trust anchor (tls.anchors) {path}: file not found") from None
        except (ssl.SSLError, OSError) as exc:
            raise PkiError(f"trust anchor (tls.anchors) {path}: not usable ({exc})") from None


def _load_identity(ctx: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    try:
        ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except FileNotFoundError as exc:
        missing = exc.filename or cert_file
        raise PkiError(f"TLS certificate or key {missing}: file not found") from None
    except ssl.SSLError as exc:
        raise PkiError(
            f"TLS certificate {cert_file} / key {key_file}: not usable ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise PkiError(f"TLS certificate {cert_file}: cannot read ({exc.strerror})") from None


def server_context(settings: Settings, client_auth: ClientAuth = "none") -> ssl.SSLContext:
    """The context of every TLS listener (STARTTLS or implicit TLS).

    ``client_auth``: ``none`` for submission/IMAP where users log in otherwise, ``optional``
    where a certificate enables SASL EXTERNAL but is not required, ``required`` on the
    operator relay (mutual TLS). Client certificates are verified against the anchors; with
    ``optional``, a presented certificate that does not verify still fails the handshake
    (OpenSSL semantics), which is the safe outcome. Revocation is checked afterwards by
    :class:`trustspace.crl.CrlStore`, so that a CRL published while the gateway runs
    applies to the next connection without a new context.
    """
    if client_auth not in _VERIFY_MODES:
        raise ValueError(f"client_auth {client_auth!r} is not one of none, optional, required")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    _load_identity(ctx, settings.tls_cert_file, settings.tls_key_file)
    if client_auth != "none":
        _load_anchors(ctx, settings)
        ctx.verify_mode = _VERIFY_MODES[client_auth]
    apply_ticket_keys(ctx)  # shared by the gateway's worker processes (trustspace/tickets.py)
    return ctx


def client_context(
    settings: Settings,
    *,
    with_client_cert: bool = True,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """The context of outbound connections (relay to other operators, directory, tests).

    The peer is verified against the anchors, with host name checking (RFC 6125): callers
    pass ``server_hostname``. With ``with_client_cert`` this gateway presents its server
    certificate as client certificate (mutual TLS between operators); ``cert_file`` and
    ``key_file`` present another identity instead (a CPS or applicative certificate).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_anchors(ctx, settings)
    if cert_file is not None:
        _load_identity(ctx, cert_file, key_file or cert_file)
    elif with_client_cert:
        _load_identity(ctx, settings.tls_cert_file, settings.tls_key_file)
    return ctx


@dataclass(frozen=True)
class PeerInfo:
    """What a TLS peer negotiated and presented, for Received headers (RFC 8314 §4.3) and
    proofs. Certificate fields are ``None`` when the peer presented no certificate."""

    version: str | None
    cipher: str | None
    cipher_bits: int | None
    subject: str | None
    issuer: str | None
    fingerprint_sha256: str | None
    idnat: str | None
    not_after: datetime | None
    certificate: x509.Certificate | None

    @property
    def has_certificate(self) -> bool:
        return self.certificate is not None

    def received_clause(self) -> str:
        """The TLS part of a Received header, e.g. ``(using TLSv1.3 with cipher …)``."""
        if not self.version:
            return ""
        text = f"(using {self.version} with cipher {self.cipher} ({self.cipher_bits} bits)"
        if self.certificate is not None:
            text += f" client certificate sha256 {self.fingerprint_sha256}"
        return text + ")"


def peer_info(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> PeerInfo:
    """Reads the negotiated parameters and the (already verified) peer certificate."""
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der) if der else None
    return PeerInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        cipher_bits=cipher[2] if cipher else None,
        subject=subject_text(cert) if cert else None,
        issuer=issuer_text(cert) if cert else None,
        fingerprint_sha256=fingerprint_sha256(der) if der else None,
        idnat=idnat_from_certificate(cert) if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        certificate=cert,
    )

