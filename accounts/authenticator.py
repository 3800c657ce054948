"""Who is this? Application passwords and client certificates, checked in constant time.

Used by SMTP submission (AUTH PLAIN/LOGIN/EXTERNAL), IMAP (LOGIN, AUTHENTICATE) and later
LDAP pass-through. argon2id runs in a worker thread; a verified credential is remembered for
a short time (as Dovecot's auth_cache) so that a client opening many connections does not
pay argon2 each time, and :meth:`Authenticator.forget` drops it when a password is revoked or
an account suspended. An unknown address costs one argon2 verification too, so response
times do not reveal which addresses exist.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import select

from accounts.passwords import DUMMY_HASH, verify_secret
from storage import credentials as credential_rows
from storage.database import Database
from storage.schema import accounts, credentials, delegations
from trustspace.certprofiles import FAMILY_WORDS, Family, PolicyOids, classify
from trustspace.certs import fingerprint_sha256, idnat_from_certificate, structure_from_certificate

CACHE_TTL = 30.0

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


class Authenticator:
    """Checks credentials against the accounts in the database."""

    def __init__(
        self, db: Database, cache_ttl: float = CACHE_TTL, *, policies: PolicyOids | None = None
    ) -> None:
        self._db = db
        self._ttl = cache_ttl
        self._policies = policies or PolicyOids.from_settings(db.settings)
        self._cache: dict[bytes, tuple[float, Identity]] = {}
        self._send_as: dict[int, tuple[float, frozenset[str]]] = {}

    @staticmethod
    def _cache_key(address: str, password: str) -> bytes:
        return hashlib.sha256(f"{address}\0{password}".encode()).digest()

    def forget(self, account_id: int | None = None) -> None:
        """Drops remembered credentials (of one account, or all)."""
        if account_id is None:
            self._cache.clear()
            self._send_as.clear()
            return
        self._send_as.pop(account_id, None)
        for key in [k for k, (_, ident) in self._cache.items() if ident.account_id == account_id]:
            del self._cache[key]

    async def check_password(self, address: str, password: str, method: str) -> Identity | None:
        """An active mailbox whose unrevoked application password is ``password``, or None."""
        address = address.strip().lower()
        key = self._cache_key(address, password)
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return Identity(**{**hit[1].__dict__, "method": method})
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
                            credentials.c.kind == "app_password",
                            credentials.c.revoked_at.is_(None),
                        )
                    )
                )
        if not hashes:
            await verify_secret(DUMMY_HASH, password)
            return None
        for cred_id, secret_hash in hashes:
            if secret_hash and await verify_secret(secret_hash, password):
                assert account is not None
                ident = Identity(
                    account_id=account.id, address=address, type=account.type, method=method,
                    idnat=account.idnat, credential_id=cred_id,
                )
                self._cache[key] = (time.monotonic() + self._ttl, ident)
                async with self._db.begin() as conn:
                    await credential_rows.touch(conn, cred_id)
                return ident
        return None

    async def check_certificate(
        self, cert: x509.Certificate | bytes, authzid: str | None, method: str = "EXTERNAL"
    ) -> Identity | None:
        """The mailbox a verified client certificate stands for, or None (SASL EXTERNAL).

        Same decision as :meth:`identify_certificate`, for callers that answer every
        failure alike.
        """
        try:
            return await self.identify_certificate(cert, authzid, method)
        except CertificateNotAccepted:
            return None

    async def identify_certificate(
        self, cert: x509.Certificate | bytes, authzid: str | None, method: str = "EXTERNAL"
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
        if isinstance(cert, bytes):
            cert = x509.load_der_x509_certificate(cert)
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
        fingerprint = fingerprint_sha256(cert).replace(":", "").lower()
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
        if row is None:
            return None
        return Identity(
            account_id=row.id, address=row.address, type=row.type, method=method, idnat=row.idnat
        )

    async def sender_addresses(self, identity: Identity) -> set[str]:
        """Addresses ``identity`` may send as: its own and the mailboxes delegating send-as.

        Remembered like verified credentials (asked at every MAIL FROM of a session).
        """
        hit = self._send_as.get(identity.account_id)
        if hit is not None and hit[0] > time.monotonic():
            return set(hit[1])
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
        self._send_as[identity.account_id] = (time.monotonic() + self._ttl, addresses)
        return set(addresses)


def _wrong_family(address: str, mailbox_type: str, family: Family) -> CertificateNotAccepted:
    words = _MAILBOX_WORDS.get(mailbox_type, f"a {mailbox_type} mailbox")
    return CertificateNotAccepted(f"{address} is {words}, and this is {FAMILY_WORDS[family]}")
