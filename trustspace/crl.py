"""Certificate revocation: CRLs from files and HTTPS URLs, kept current while the gateway runs.

Why revocation is decided here, after the handshake, rather than by OpenSSL inside the
``SSLContext`` (the handshake still verifies the chain to an anchor and the validity dates):

* an ``SSLContext`` cannot forget a CRL, so a new list means a new context, and asyncio's
  implicit-TLS servers keep the context they were created with: swapping it means private
  attributes or re-binding the listening sockets;
* OpenSSL's CRL flags apply to every issuer: with ``VERIFY_CRL_CHECK_LEAF`` a peer whose CA
  has no CRL is refused ("unable to get certificate CRL"), so two anchors with a CRL for only
  one of them cannot work; here a CA without a CRL is simply not checked in ``leaf`` mode;
* once a CRL's nextUpdate has passed OpenSSL refuses every certificate of that CA, whatever
  the operator chose; here ``tls.crl_expired`` decides (``refuse`` by default);
* a refusal after the handshake is said in the protocol, with a sentence (SMTP ``550 5.7.1``
  or ``535 5.7.8``, IMAP ``NO [AUTHENTICATIONFAILED]``), instead of a TLS alert that the
  peer's logs seldom show;
* the same check runs again on open sessions when a list changes (IMAP sessions logged in
  with a certificate revoked since get ``* BYE``).

Sources: ``tls.crl_files`` (and, in embedded mode, the development CA's ``pki/crl.pem``),
re-read when their mtime or size changes (polled every ``tls.crl_file_check_interval``
seconds), and ``tls.crl_urls`` fetched over HTTPS every ``tls.crl_refresh`` seconds. A CRL is
used only when its signature verifies with the certificate of its issuer among the anchors,
and never replaced by an older one. When a fetch fails the last good list stays in force (a
copy is kept under ``pki/crl-cache/`` for the next start), as the MSSanté rules require.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from config import Settings
from trustspace.certs import PkiError, fingerprint_sha256, load_certificates, load_crl
from trustspace.pki import ensure_authority
from trustspace.refusal import Refusal

__all__ = ["CrlStore", "LoadedCrl", "Verdict", "crl_file_paths", "require_not_revoked"]

log = logging.getLogger("mssante.tls.crl")

FETCH_TIMEOUT = 30.0
MAX_CRL_SIZE = 64 * 1024 * 1024
"""IGC-Santé CRLs are a few MiB; anything far larger is not a CRL we want to parse."""
DEV_CRL_RENEW_EVERY = 12 * 3600.0
"""How often embedded mode lets the development CA renew its CRL (when within 7 days of
its nextUpdate; see ``trustspace.pki``)."""
RETRY_AFTER_FAILURE = 300.0
"""Seconds before a failed CRL download is tried again (capped by ``tls.crl_refresh``)."""

Listener = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Verdict:
    """The revocation answer for one certificate: ``reason`` is a sentence for a person."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class LoadedCrl:
    """One verified CRL and where it came from."""

    source: str
    crl: x509.CertificateRevocationList
    issuer: str
    revoked: frozenset[int]

    @property
    def this_update(self) -> datetime:
        return self.crl.last_update_utc

    @property
    def next_update(self) -> datetime | None:
        return self.crl.next_update_utc

    def expired(self, now: datetime) -> bool:
        return self.next_update is not None and self.next_update < now


def crl_file_paths(settings: Settings) -> list[tuple[Path, bool]]:
    """CRL files to watch, each with whether it is the optional embedded default.

    In embedded mode the development CA's ``pki/crl.pem`` is always watched, so that
    ``mssante pki revoke`` takes effect without configuration; it is ignored quietly when
    missing or when that CA is not among the anchors.
    """
    paths = [(p, False) for p in settings.tls_crl_files]
    local = settings.pki_dir / "crl.pem"
    if settings.embedded and all(p != local for p, _ in paths):
        paths.append((local, True))
    return paths


def _name(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def _parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _https_context(settings: Settings) -> ssl.SSLContext:
    """CRL servers are verified against the system store and the trust anchors. The CRL's
    own signature is what makes it trustworthy; HTTPS keeps a stale copy from being replayed."""
    ctx = ssl.create_default_context()
    for path in settings.tls_anchor_files:
        with contextlib.suppress(OSError, ssl.SSLError):
            ctx.load_verify_locations(cafile=str(path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def fetch_crl(url: str, ctx: ssl.SSLContext, timeout: float = FETCH_TIMEOUT) -> bytes:
    """Downloads one CRL (blocking: run it in a thread); raises ``PkiError`` with the reason.

    HTTPS only, no redirects, status 200 only, at most ``MAX_CRL_SIZE`` octets.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise PkiError(f"CRL URL {url}: not an https:// URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=ctx,
                                       timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/pkix-crl"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise PkiError(f"CRL URL {url}: the server answered HTTP {resp.status} {resp.reason}")
        body = resp.read(MAX_CRL_SIZE + 1)
        if len(body) > MAX_CRL_SIZE:
            raise PkiError(f"CRL URL {url}: larger than {MAX_CRL_SIZE} octets")
        return body
    except ssl.SSLCertVerificationError as exc:
        raise PkiError(f"CRL URL {url}: server certificate refused ({exc.verify_message})") \
            from None
    except (OSError, http.client.HTTPException) as exc:
        raise PkiError(f"CRL URL {url}: cannot download ({exc})") from None
    finally:
        conn.close()


class CrlStore:
    """The CRLs in force, per issuing CA, and the revocation check every front-end uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._anchors: dict[bytes, list[x509.Certificate]] = {}
        for path in settings.tls_anchor_files:
            with contextlib.suppress(PkiError):  # start-up already refused unusable anchors
                for cert in load_certificates(path, "trust anchor"):
                    self._anchors.setdefault(cert.subject.public_bytes(), []).append(cert)
        self._by_source: dict[str, LoadedCrl] = {}
        self._effective: dict[bytes, list[LoadedCrl]] = {}
        self._file_signatures: dict[Path, tuple[int, int, int] | None] = {}
        self._url_due = 0.0
        self._warned_expired: set[str] = set()
        self._listeners: list[Listener] = []
        self.generation = 0
        """Incremented each time the CRLs in force change."""

    # -- what is in force ----------------------------------------------------------------
    @property
    def crls(self) -> list[LoadedCrl]:
        """Every CRL in force (the newest of each source)."""
        return [entry for entries in self._effective.values() for entry in entries]

    def pem_bundle(self) -> bytes:
        """Every CRL in force as one PEM file (what slapd's ``TLSCRLFile`` reads)."""
        ordered = sorted(self.crls, key=lambda c: (c.issuer, c.source))
        return b"".join(c.crl.public_bytes(serialization.Encoding.PEM) for c in ordered)

    def add_listener(self, listener: Listener) -> None:
        """``listener()`` is awaited after each change (close sessions, update slapd)."""
        self._listeners.append(listener)

    # -- the check -------------------------------------------------------------------------
    def check(self, cert: x509.Certificate | bytes, now: datetime | None = None) -> Verdict:
        """Whether a certificate the handshake verified is still good as far as CRLs say.

        ``leaf`` (default): the peer certificate is checked against its issuer's CRL when
        one is in force; a CA without a CRL is not checked. ``chain``: every CA certificate
        up to the anchor is checked too, and a CA without a CRL is a refusal.
        """
        if isinstance(cert, bytes):
            cert = x509.load_der_x509_certificate(cert)
        now = now or datetime.now(UTC)
        chain_mode = self.settings.tls.crl_check == "chain"
        for current in self._path(cert) if chain_mode else [cert]:
            entries = self._effective.get(current.issuer.public_bytes(), [])
            if not entries:
                if chain_mode:
                    return Verdict(False, f"no revocation list of {_name(current.issuer)} is "
                                          "available (tls.crl_check = chain requires one)")
                continue
            # Several sources for one CA (a file and a URL): a certificate any of them lists
            # is revoked; the CA's status is known while one of them is still current.
            if all(entry.expired(now) for entry in entries):
                verdict = self._expired(entries, now)
                if verdict is not None:
                    return verdict
            for entry in entries:
                if current.serial_number not in entry.revoked:
                    continue
                revoked = entry.crl.get_revoked_certificate_by_serial_number(
                    current.serial_number)
                date = revoked.revocation_date_utc if revoked is not None else None
                on = f" on {date:%Y-%m-%d %H:%M} UTC" if date is not None else ""
                whose = "certificate" if current is cert else f"issuing CA {_name(current.subject)}"
                return Verdict(False, f"the {whose} (serial {current.serial_number:x}, issued by "
                                      f"{entry.issuer}) was revoked{on}")
        return Verdict(True)

    def _expired(self, entries: list[LoadedCrl], now: datetime) -> Verdict | None:
        latest = max(entries, key=lambda e: e.next_update or now)
        when = f"{latest.next_update:%Y-%m-%d %H:%M} UTC" if latest.next_update else "?"
        if self.settings.tls.crl_expired == "refuse":
            return Verdict(False, f"the revocation list of {latest.issuer} expired on {when} "
                                  "and no newer one could be obtained, so revocation cannot "
                                  "be checked")
        if latest.source not in self._warned_expired:
            self._warned_expired.add(latest.source)
            log.warning("crl_expired_accepting", extra={"fields": {
                "source": latest.source, "issuer": latest.issuer, "next_update": when}})
        return None

    def _path(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The certificate and its CA certificates found among the anchors, up to a root."""
        path = [cert]
        current = cert
        while current.issuer != current.subject and len(path) < 10:
            issuers = self._anchors.get(current.issuer.public_bytes())
            if not issuers:
                break
            current = issuers[0]
            if current.issuer == current.subject:
                break  # a root is trusted as configured, not checked against its own CRL
            path.append(current)
        return path

    # -- loading ---------------------------------------------------------------------------
    def _adopt(self, source: str, crl: x509.CertificateRevocationList, *, quiet: bool) -> bool:
        """Verifies and stores ``crl``; True when the CRLs in force changed."""
        issuer = _name(crl.issuer)
        candidates = self._anchors.get(crl.issuer.public_bytes(), [])
        if not candidates:
            (log.debug if quiet else log.warning)("crl_ignored", extra={"fields": {
                "source": source, "reason": f"its issuer {issuer} is not among the trust "
                                            "anchors (tls.anchors)"}})
            return False
        if not any(_signature_ok(crl, ca) for ca in candidates):
            (log.debug if quiet else log.warning)("crl_ignored", extra={"fields": {
                "source": source, "reason": f"signature does not verify with {issuer}"}})
            return False
        old = self._by_source.get(source)
        if old is not None:
            der = serialization.Encoding.DER
            if old.crl.public_bytes(der) == crl.public_bytes(der):
                return False
            if crl.last_update_utc < old.this_update:
                log.warning("crl_ignored", extra={"fields": {
                    "source": source, "reason": "older than the list in force"}})
                return False
        self._by_source[source] = LoadedCrl(
            source=source, crl=crl, issuer=issuer,
            revoked=frozenset(r.serial_number for r in crl),
        )
        self._warned_expired.discard(source)
        log.info("crl_loaded", extra={"fields": {
            "source": source, "issuer": issuer, "revoked": len(self._by_source[source].revoked),
            "next_update": f"{crl.next_update_utc:%Y-%m-%dT%H:%M:%SZ}"
            if crl.next_update_utc else "none"}})
        return self._recompute()

    def _recompute(self) -> bool:
        effective: dict[bytes, list[LoadedCrl]] = {}
        for entry in self._by_source.values():
            effective.setdefault(entry.crl.issuer.public_bytes(), []).append(entry)
        changed = self.crls != [e for entries in effective.values() for e in entries]
        self._effective = effective
        return changed

    def _check_files(self, *, strict: bool = False) -> bool:
        """Re-reads the CRL files whose mtime, size or inode changed; True on a change."""
        changed = False
        for path, optional in crl_file_paths(self.settings):
            try:
                st = path.stat()
                signature: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                signature = None
            if path in self._file_signatures and self._file_signatures[path] == signature:
                continue
            self._file_signatures[path] = signature
            if signature is None and optional:
                continue
            try:
                crl = load_crl(path)
            except PkiError as exc:
                if strict and not optional:
                    raise
                # The list in force stays (a half-written file is read again once replaced).
                log.warning("crl_unreadable", extra={"fields": {"reason": str(exc)}})
                continue
            changed |= self._adopt(str(path), crl, quiet=optional)
        return changed

    def _cache_file(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:24]
        return self.settings.pki_dir / "crl-cache" / f"{digest}.crl"

    def _load_cached(self) -> bool:
        changed = False
        for url in self.settings.tls.crl_urls:
            cache = self._cache_file(url)
            with contextlib.suppress(OSError, ValueError):
                changed |= self._adopt(url, _parse_crl(cache.read_bytes()), quiet=False)
        return changed

    def _save_cached(self, url: str, crl: x509.CertificateRevocationList) -> None:
        cache = self._cache_file(url)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".crl.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(crl.public_bytes(serialization.Encoding.DER))
            os.replace(tmp, cache)
        except OSError as exc:
            log.warning("crl_cache_unwritable", extra={"fields": {"path": str(cache),
                                                                  "reason": exc.strerror}})

    async def _fetch_urls(self) -> bool:
        tls = self.settings.tls
        if not tls.crl_urls:
            return False
        ctx = await asyncio.to_thread(_https_context, self.settings)
        changed = False
        failed = False
        for url in tls.crl_urls:
            try:
                data = await asyncio.to_thread(fetch_crl, url, ctx, tls.crl_fetch_timeout)
                crl = _parse_crl(data)
            except (PkiError, ValueError) as exc:
                failed = True
                kept = self._by_source.get(url)
                reason = str(exc) if isinstance(exc, PkiError) else \
                    f"CRL URL {url}: not a valid PEM or DER CRL"
                log.warning("crl_fetch_failed", extra={"fields": {
                    "url": url, "reason": reason,
                    "kept": f"{kept.issuer} until {kept.next_update:%Y-%m-%dT%H:%M:%SZ}"
                    if kept is not None and kept.next_update else "none"}})
                continue
            adopted = self._adopt(url, crl, quiet=False)
            if url in self._by_source and self._by_source[url].crl is crl:
                await asyncio.to_thread(self._save_cached, url, crl)
            changed |= adopted
        wait = min(tls.crl_refresh, RETRY_AFTER_FAILURE) if failed else tls.crl_refresh
        self._url_due = time.monotonic() + wait
        return changed

    async def load_initial(self) -> None:
        """Start-up: the files (a configured file that cannot be used stops the start with
        ``PkiError``), the cached copies of the URLs, then one download of each URL."""
        await asyncio.to_thread(self._check_files, strict=True)
        await asyncio.to_thread(self._load_cached)
        await self._fetch_urls()
        for url in self.settings.tls.crl_urls:
            if url not in self._by_source:
                # Nothing fetched nor cached: that CA goes unchecked until a fetch succeeds.
                log.error("crl_unavailable", extra={"fields": {"url": url}})
        self.generation += 1

    async def refresh(self, *, fetch: bool = False) -> bool:
        """Looks at the files, and at the URLs when due (or ``fetch``); True on a change,
        after the listeners have run."""
        changed = await asyncio.to_thread(self._check_files)
        if self.settings.tls.crl_urls and (fetch or time.monotonic() >= self._url_due):
            changed |= await self._fetch_urls()
        if changed:
            self.generation += 1
            for listener in list(self._listeners):
                try:
                    await listener()
                except Exception:  # noqa: BLE001 - one failing listener must not stop the rest
                    log.exception("crl_listener_failed")
        return changed

    async def run(self, stop: asyncio.Event, *, renew: bool = True) -> None:
        """Polls until ``stop`` is set (a background task of the gateway).

        Embedded mode also renews the development CA's CRL before its nextUpdate (it is
        otherwise renewed only at start): with ``crl_expired = "refuse"`` a gateway running
        for weeks would else refuse every certificate of its own CA. ``renew=False``: only
        read the files (a worker process; its supervisor renews, so one process writes).
        """
        interval = self.settings.tls.crl_file_check_interval
        renew_due = time.monotonic() + DEV_CRL_RENEW_EVERY
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                if renew and self.settings.embedded and time.monotonic() >= renew_due:
                    renew_due = time.monotonic() + DEV_CRL_RENEW_EVERY
                    await asyncio.to_thread(ensure_authority, self.settings.pki_dir)
                await self.refresh()
            except Exception:  # noqa: BLE001 - try again at the next interval
                log.exception("crl_refresh_failed")


def _signature_ok(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def require_not_revoked(
    store: CrlStore | None, cert: x509.Certificate | bytes | None, use: str
) -> None:
    """Raises the protocol refusal for a revoked certificate (no-op without store or cert).

    ``use`` is ``relay`` (an operator relaying to us: ``550 5.7.1``), ``send`` (MAIL FROM
    in a session logged in with the certificate before it was revoked: ``550 5.7.1``) or
    ``auth`` (SASL EXTERNAL: ``535 5.7.8``, IMAP ``AUTHENTICATIONFAILED``). Each refusal is
    logged with the certificate's fingerprint, never with who it names.
    """
    if store is None or cert is None:
        return
    verdict = store.check(cert)
    if verdict.ok:
        return
    log.info("certificate_refused", extra={"fields": {
        "use": use, "reason": verdict.reason, "fingerprint": fingerprint_sha256(cert)}})
    if use == "relay":
        raise Refusal(550, "5.7.1", f"Relay refused: {verdict.reason}; the sending operator "
                                    "must use a valid certificate")
    if use == "send":
        raise Refusal(550, "5.7.1", f"Sending refused: {verdict.reason}; log in again with a "
                                    "valid certificate")
    raise Refusal(535, "5.7.8", f"Authentication refused: {verdict.reason}; ask for a new "
                                "certificate", imap_code="AUTHENTICATIONFAILED")
