"""When the certificates and CRLs the gateway relies on stop being valid.

Read by the metrics endpoint and ``mssante status``: an expired server certificate stops
every peer from relaying to us, an expired anchor or CRL stops us verifying theirs, and
none of it shows until the day it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config import Settings
from trustspace.certs import PkiError, load_certificates, load_crl, subject_text
from trustspace.crl import crl_file_paths


@dataclass(frozen=True)
class Expiry:
    """One certificate or CRL and when it stops being valid."""

    role: str  # "server", "anchor", "crl"
    subject: str
    not_after: datetime


def tls_expiries(settings: Settings) -> list[Expiry]:
    """The server certificate, every anchor, every CRL's next update (files, the embedded
    CA's list and the cached copies of downloaded ones; unreadable files are skipped: the
    listeners already refuse to start on those). Blocking: reads files."""
    out: list[Expiry] = []
    files = [("server", settings.tls_cert_file)]
    files += [("anchor", path) for path in settings.tls_anchor_files]
    for role, path in files:
        try:
            certificates = load_certificates(path)
        except PkiError:
            continue
        chain = certificates[:1] if role == "server" else certificates
        out += [Expiry(role, subject_text(c), c.not_valid_after_utc) for c in chain]
    crls = [path for path, _required in crl_file_paths(settings)]
    cache = settings.pki_dir / "crl-cache"  # the last good copies of the crl_urls lists
    if cache.is_dir():
        crls += sorted(cache.glob("*.crl"))
    for path in crls:
        try:
            crl = load_crl(path)
        except PkiError:
            continue
        if crl.next_update_utc is not None:
            out.append(Expiry("crl", crl.issuer.rfc4514_string(), crl.next_update_utc))
    return out
