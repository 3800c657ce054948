"""Who is this? Application passwords and client certificates, checked in constant time.

Used by SMTP submission (AUTH PLAIN/LOGIN/EXTERNAL), IMAP (LOGIN, AUTHENTICATE) and later
LDAP pass-through. argon2id runs in a worker thread; a verified credential is remembered for
``[auth] cache_ttl`` seconds (as Dovecot's auth_cache) so that a client opening many
connections does not pay argon2 each time, and a wrong one for ``negative_cache_ttl``
(answered without argon2, still counted by the guessing limits). The cache is keyed by an
HMAC of the credentials under a random key of this process, so it holds nothing that
could be turned back into a password or tried against another process's memory.

What is remembered is only trusted under the access version it was read at
(:mod:`accounts.access`), and a cache hit reads that version from the database first (one
primary-key read, far cheaper than argon2): a revoked password or delegation, a changed
password, a suspended or closed account is forgotten at the next login, whichever process
or command made the change, and :meth:`Authenticator.still_valid` tells open sessions that
their login no longer holds. An unknown address costs one argon2 verification too, so
response times do not reveal which addresses exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import select

from accounts.access import AccessWatch
from accounts.limiter import LoginLimiter
from accounts.passwords import DUMMY_HASH, verify_secret
from config.settings import AuthSettings
from storage import credentials as credential_rows
from storage.database import Database
from storage.schema import accounts, credentials, delegations
from storage.traces import TraceBuffer
from trustspace.certprofiles import FAMILY_WORDS, Family, PolicyOids, classify
from trustspace.certs import fingerprint_sha256, idnat_from_certificate, structure_from_certificate

log = logging.getLogger("mssante.accounts")

CACHE_MAX = 100_000
"""Remembered answers at most (beyond, the cache starts again empty)."""
SHOWN_LOGIN = 64


def shown_login(login: str) -> str:
    """A login name as traces and logs show it: at most 64 characters, control characters
    and non-ASCII escaped (a client chooses it, it must not forge log lines)."""
    text = login[:SHOWN_LOGIN].encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if 0x20 <= ord(ch) < 0x7F else f"\\x{ord(ch):02x}" for ch in text)
    return text + ("..." if len(login) > SHOWN_LOGIN else "")

MAILBOX_FOR_FAMILY = {Family.PERSONAL: "PER", Family.APPLICATION: "APP"}
"""MSSanté client rules: a professional's personal certificate opens that professional's
nominative mailbox, an organisation's applicative certificate its applicative mailboxes;
nothing else opens a mailbox by certificate (organisational mailboxes are reached through
their members' delegations, server certificates authenticate operators on the relay)."""

_MAILBOX_WORDS = {
    "PER": "a nominative (PER) mailbox: it accepts only its holder's personal certificate",
    "APP": "an applicative (APP) mailbox: it accepts only the applicative certificate of its "
    "organisation",
    "ORG": "an organisational (ORG) mailbox: its members open it through their own "
    "mailboxes, not with a certificate",
}


class CertificateNotAccepted(Exception):
    """A verified certificate that may not open the mailbox asked for; says why, for people."""


@dataclass(frozen=True)
class Identity:
    """An authenticated mailbox holder, as SMTP and IMAP sessions carry it."""

    account_id: int
    address: str
    type: str
    method: str
    idnat: str | None = None
    credential_id: int | None = None
    expires_at: float | None = None
    """Unix time after which the login no longer holds (a Pro Santé Connect token's
    expiry); None for passwords and certificates."""


class Authenticator:
    """Checks credentials against the accounts in the database."""

    def __init__(self, db: Database, cache_ttl: float | None = None,
                 access_interval: float | None = None,
                 limits: AuthSettings | None = None, *,
                 policies: PolicyOids | None = None) -> None:
        self._db = db
        limits = limits or db.settings.auth
        self._ttl = limits.cache_ttl if cache_ttl is None else cache_ttl
        self._negative_ttl = limits.negative_cache_ttl
        self._key = secrets.token_bytes(32)  # per process: the cache keys mean nothing elsewhere
        self._refused: dict[bytes, tuple[float, int | None, str]] = {}
        self._inflight: dict[bytes, asyncio.Future[tuple[Identity | None, str]]] = {}
        self._policies = policies or PolicyOids.from_settings(db.settings)
        self.limiter = LoginLimiter(limits)
        self.traces = TraceBuffer(db)
        self.access = AccessWatch(db) if access_interval is None else AccessWatch(
            db, access_interval)
        # Each remembered answer carries the access version it was read under.
        self._cache: dict[bytes, tuple[float, int | None, Identity]] = {}
        self._send_as: dict[int, tuple[float, int | None, frozenset[str]]] = {}
        self._valid: dict[tuple[int, int | None], tuple[int | None, str | None]] = {}
        self._refresh: asyncio.Task[int] | None = None

    async def close(self) -> None:
        """Stops watching the access version and writes the last traces (gateway stop)."""
        await self.access.stop()
        await self.traces.close()

    def _fresh(self, expires: float, version: int | None) -> bool:
        return expires > time.monotonic() and version == self.access.version

    def _cache_key(self, address: str, password: str) -> bytes:
        return hmac.new(self._key, f"{address}\0{password}".encode(), hashlib.sha256).digest()

    async def _still_current(self, version: int | None) -> bool:
        """Whether a remembered answer read under ``version`` still holds: the access version
        read now from the database (another process may have revoked a second ago)."""
        return version is not None and await self.access.refresh() == version

    def _remember(self, key: bytes, ident: Identity, version: int | None) -> None:
        if self._ttl <= 0:
            return
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self._ttl, version, ident)

    def forget(self, account_id: int | None = None) -> None:
        """Drops remembered credentials (of one account, or all)."""
        self._valid.clear()
        self._refused.clear()
        if account_id is None:
            self._cache.clear()
            self._send_as.clear()
        else:
            self._send_as.pop(account_id, None)
            for key in [k for k, (_, _, ident) in self._cache.items()
                        if ident.account_id == account_id]:
                del self._cache[key]
        # A change made in this process: open sessions need not wait for the next poll.
        if self.access.running and (self._refresh is None or self._refresh.done()):
            with contextlib.suppress(RuntimeError):
                self._refresh = asyncio.get_running_loop().create_task(self.access.refresh())

    async def check_password(
        self, address: str, password: str, method: str, *, client: str | None = None,
        protocol: str = "", session_id: str = "", kind: str = "app_password",
    ) -> Identity | None:
        """An active mailbox whose unrevoked application password is ``password``, or None.

        ``kind="password"`` checks the portal password instead (chosen at sign-up, only
        ever the first factor of a portal login): mail clients never get to use it, and
        an application password never opens the portal.

        ``client`` (the peer's IP address) and ``protocol`` ("smtp", "imap", "web") feed the
        guessing limits (:mod:`accounts.limiter`) and the trace of the attempt. None is the
        only failure answer, whatever the reason (unknown, wrong, locked, over budget), so
        that every front-end gives one reply for all of them.
        """
        await self.access.start()
        login = address.strip().lower()
        verdict = self.limiter.before(login, client)
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        if verdict.refused is not None:
            result = verdict.refused.replace(" ", "_")
            ident = None
        else:
            ident, result = await self._verify_password(login, password, method, client, kind)
            if ident is not None:
                self.limiter.succeeded(login, client)
            else:
                self.limiter.failed(login, client, name_tried=result != "over_budget")
        self.traces.add(
            session_id=session_id, service=protocol or "unknown",
            event="auth_success" if ident is not None else "auth_failure",
            detail={"method": method, "login": shown_login(login), "client": client or "",
                    "result": result, "delay": round(verdict.delay, 3)},
        )
        if ident is None:
            log.info("auth_failed", extra={"fields": {
                "protocol": protocol, "method": method, "login": shown_login(login),
                "client": client or "", "result": result}})
        return ident

    async def _verify_password(self, address: str, password: str, method: str,
                               client: str | None, kind: str = "app_password",
                               ) -> tuple[Identity | None, str]:
        """(identity, "ok") or (None, why): "unknown", "wrong_password", "over_budget"."""
        key = self._cache_key(f"{kind}\0{address}", password)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            if hit[0] > now and await self._still_current(hit[1]):
                return Identity(**{**hit[2].__dict__, "method": method}), "ok"
            self._cache.pop(key, None)
        refused = self._refused.get(key)
        if refused is not None:
            if refused[0] > now and await self._still_current(refused[1]):
                return None, refused[2]
            self._refused.pop(key, None)
        pending = self._inflight.get(key)
        if pending is not None:
            # The same credentials are being verified for another session right now (a
            # client opening several connections at once): share that one argon2 run.
            try:
                ident, result = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this session was cancelled
                # the session verifying gave up: verify here instead
            else:
                if ident is not None:
                    ident = Identity(**{**ident.__dict__, "method": method})
                return ident, result
        if not self.limiter.may_hash(client):
            return None, "over_budget"  # no argon2 time for this address until it refills
        future: asyncio.Future[tuple[Identity | None, str]] = (
            asyncio.get_running_loop().create_future())
        self._inflight[key] = future
        try:
            answer = await self._verify_uncached(key, address, password, method, kind)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            self._inflight.pop(key, None)

    async def _verify_uncached(self, key: bytes, address: str, password: str, method: str,
                               kind: str) -> tuple[Identity | None, str]:
        version = await self.access.refresh()
        async with self._db.read() as conn:
            account = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.type, accounts.c.idnat).where(
                        accounts.c.address == address, accounts.c.status == "active"
                    )
                )
            ).first()
            hashes: list[Any] = []
            if account is not None:
                hashes = list(
                    await conn.execute(
                        select(credentials.c.id, credentials.c.secret_hash).where(
                            credentials.c.account_id == account.id,
                            credentials.c.kind == kind,
                            credentials.c.revoked_at.is_(None),
                        )
                    )
                )
        if not hashes:
            await verify_secret(DUMMY_HASH, password)
            self._refuse(key, version, "unknown")
            return None, "unknown"
        for cred_id, secret_hash in hashes:
            if secret_hash and await verify_secret(secret_hash, password):
                assert account is not None
                ident = Identity(
                    account_id=account.id, address=address, type=account.type, method=method,
                    idnat=account.idnat, credential_id=cred_id,
                )
                self._remember(key, ident, version)
                async with self._db.begin() as conn:
                    await credential_rows.touch(conn, cred_id)
                return ident, "ok"
        self._refuse(key, version, "wrong_password")
        return None, "wrong_password"

    def _refuse(self, key: bytes, version: int | None, result: str) -> None:
        if self._negative_ttl <= 0:
            return
        if len(self._refused) >= CACHE_MAX:
            self._refused.clear()
        self._refused[key] = (time.monotonic() + self._negative_ttl, version, result)

    async def check_certificate(
        self, cert: x509.Certificate | bytes, authzid: str | None, method: str = "EXTERNAL",
        *, client: str | None = None, protocol: str = "", session_id: str = "",
    ) -> Identity | None:
        """The mailbox a verified client certificate stands for, or None (SASL EXTERNAL).

        Same decision as :meth:`identify_certificate`, for callers that answer every
        failure alike.
        """
        try:
            return await self.identify_certificate(
                cert, authzid, method, client=client, protocol=protocol, session_id=session_id
            )
        except CertificateNotAccepted:
            return None

    async def identify_certificate(
        self, cert: x509.Certificate | bytes, authzid: str | None, method: str = "EXTERNAL",
        *, client: str | None = None, protocol: str = "", session_id: str = "",
    ) -> Identity | None:
        """The mailbox a verified client certificate stands for (SASL EXTERNAL, RFC 4422 App. A).

        The certificate must already have been verified against the trust anchors by TLS.
        Its family (policy OID and key usages, :mod:`trustspace.certprofiles`) decides which
        mailboxes it may open: a personal certificate a PER mailbox of its idNatPS, an
        applicative certificate an APP mailbox of its structure; either may also have been
        registered by fingerprint, for a mailbox of the same type only. When it matches
        several mailboxes the client must say which with an authorisation identity.
        Returns None when it names no mailbox; raises :class:`CertificateNotAccepted` when
        the family is wrong for the mailbox (or for any mailbox), with the reason.
        """
        await self.access.start()
        if isinstance(cert, bytes):
            cert = x509.load_der_x509_certificate(cert)
        try:
            return await self._identify_certificate(
                cert, authzid, method, client=client, protocol=protocol, session_id=session_id
            )
        except CertificateNotAccepted as exc:
            self.traces.add(
                session_id=session_id, service=protocol or "unknown", event="auth_failure",
                detail={"method": method, "login": shown_login(authzid or ""),
                        "client": client or "",
                        "certificate": fingerprint_sha256(cert).replace(":", "").lower()[:16],
                        "result": "certificate_family", "reason": str(exc)[:200]},
            )
            raise

    async def _identify_certificate(
        self, cert: x509.Certificate, authzid: str | None, method: str,
        *, client: str | None, protocol: str, session_id: str,
    ) -> Identity | None:
        fingerprint = fingerprint_sha256(cert).replace(":", "").lower()
        key = self._cache_key(f"certificate\0{fingerprint}", authzid or "")
        hit = self._cache.get(key)
        if hit is not None:
            if hit[0] > time.monotonic() and await self._still_current(hit[1]):
                remembered = Identity(**{**hit[2].__dict__, "method": method})
                self._trace_certificate(remembered, authzid, method, client, protocol,
                                        session_id, fingerprint)
                return remembered
            self._cache.pop(key, None)
        version = await self.access.refresh()
        ident = await self._identify_uncached(cert, authzid, method, fingerprint)
        if ident is not None:
            self._remember(key, ident, version)
        self._trace_certificate(ident, authzid, method, client, protocol, session_id,
                                fingerprint)
        return ident

    def _trace_certificate(self, ident: Identity | None, authzid: str | None, method: str,
                           client: str | None, protocol: str, session_id: str,
                           fingerprint: str) -> None:
        self.traces.add(
            session_id=session_id, service=protocol or "unknown",
            event="auth_success" if ident is not None else "auth_failure",
            detail={"method": method, "login": shown_login(ident.address if ident else
                                                           (authzid or "")),
                    "client": client or "", "certificate": fingerprint[:16],
                    "result": "ok" if ident is not None else "no_mailbox"},
        )

    async def _identify_uncached(self, cert: x509.Certificate, authzid: str | None,
                                 method: str, fingerprint: str) -> Identity | None:
        found = classify(cert, self._policies)
        if found.family is Family.UNKNOWN:
            raise CertificateNotAccepted(f"this certificate opens no mailbox: {found.reason}")
        mailbox_type = MAILBOX_FOR_FAMILY.get(found.family)
        if mailbox_type is None:
            raise CertificateNotAccepted(
                f"this is {found.words} of an operator's mail server; it opens no mailbox "
                "(use the professional's personal certificate or the organisation's "
                "applicative certificate)"
            )
        idnat = idnat_from_certificate(cert) if found.family is Family.PERSONAL else None
        structure = (
            structure_from_certificate(cert) if found.family is Family.APPLICATION else None
        )
        cols = (accounts.c.id, accounts.c.address, accounts.c.type, accounts.c.idnat)
        async with self._db.read() as conn:
            rows: list[Any] = []
            if idnat:
                rows += (
                    await conn.execute(
                        select(*cols).where(
                            accounts.c.idnat == idnat, accounts.c.status == "active"
                        )
                    )
                ).all()
            elif structure:
                rows += (
                    await conn.execute(
                        select(*cols).where(
                            accounts.c.structure_id == structure,
                            accounts.c.type == "APP",
                            accounts.c.status == "active",
                        )
                    )
                ).all()
            rows += (
                await conn.execute(
                    select(*cols)
                    .join(credentials, credentials.c.account_id == accounts.c.id)
                    .where(
                        credentials.c.kind == "certificate",
                        credentials.c.cert_fingerprint == fingerprint,
                        credentials.c.revoked_at.is_(None),
                        accounts.c.status == "active",
                    )
                )
            ).all()
        fitting = {r.address: r for r in rows if r.type == mailbox_type}
        other = {r.address: r for r in rows if r.type != mailbox_type}
        if authzid:
            wanted = authzid.strip().lower()
            row = fitting.get(wanted)
            if row is None and wanted in other:
                raise _wrong_family(wanted, other[wanted].type, found.family)
        elif len(fitting) == 1:
            row = next(iter(fitting.values()))
        elif not fitting and len(other) == 1:
            address, only = next(iter(other.items()))
            raise _wrong_family(address, only.type, found.family)
        else:
            row = None
        return None if row is None else Identity(
            account_id=row.id, address=row.address, type=row.type, method=method, idnat=row.idnat
        )

    async def sender_addresses(self, identity: Identity) -> set[str]:
        """Addresses ``identity`` may send as: its own and the mailboxes delegating send-as.

        Remembered like verified credentials (asked at every MAIL FROM of a session).
        """
        hit = self._send_as.get(identity.account_id)
        if hit is not None and self._fresh(hit[0], hit[1]):
            return set(hit[2])
        version = self.access.version
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(accounts.c.address)
                    .join(delegations, delegations.c.owner_account_id == accounts.c.id)
                    .where(
                        delegations.c.delegate_account_id == identity.account_id,
                        delegations.c.can_send_as.is_(True),
                        accounts.c.status == "active",
                    )
                )
            ).all()
        addresses = frozenset({identity.address, *(r.address for r in rows)})
        self._send_as[identity.account_id] = (time.monotonic() + self._ttl, version, addresses)
        return set(addresses)

    async def still_valid(self, identity: Identity) -> str | None:
        """None while the login of an open session still holds; otherwise why not
        ("suspended", "closed", "pending": the account's status; "revoked": the application
        password used). Read once per access version, so a session may ask at every command.
        """
        key = (identity.account_id, identity.credential_id)
        version = self.access.version
        hit = self._valid.get(key)
        if hit is not None and hit[0] == version and version is not None:
            return hit[1]
        async with self._db.read() as conn:
            status = (await conn.execute(
                select(accounts.c.status).where(accounts.c.id == identity.account_id)
            )).scalar()
            reason = None if status == "active" else str(status or "closed")
            if reason is None and identity.credential_id is not None:
                revoked = (await conn.execute(
                    select(credentials.c.revoked_at).where(
                        credentials.c.id == identity.credential_id)
                )).first()
                if revoked is None or revoked[0] is not None:
                    reason = "revoked"
        if len(self._valid) > 100_000:
            self._valid.clear()
        self._valid[key] = (version, reason)
        return reason

def _wrong_family(address: str, mailbox_type: str, family: Family) -> CertificateNotAccepted:
    words = _MAILBOX_WORDS.get(mailbox_type, f"a {mailbox_type} mailbox")
    return CertificateNotAccepted(f"{address} is {words}, and this is {FAMILY_WORDS[family]}")
