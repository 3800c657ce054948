"""The registration life cycle: sign-up, e-mail confirmation, review, approval or rejection.

A professional signs up with the seed's form (:mod:`accounts.signup`); the request waits
``unconfirmed`` until the link sent to the usual address is opened (a random token kept only
as its SHA-256, valid 48 hours, single use, re-sent at most every few minutes), then
``pending`` in the administrators' queue, whose age is counted in working hours
(:mod:`accounts.working_hours`). Approval creates the nominative mailbox under the derived
address ``prenom.nom@<domain>`` (accents folded, collisions numbered, editable by the
administrator), moves the password hash to the mailbox's portal credential and writes the
certification e-mail; rejection gives a reason. Every step writes an account proof.

Nothing here tells a visitor whether an address is already registered: a second sign-up
with a known address answers the same and sends its owner a notice instead of a link.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from accounts import audit
from accounts.errors import AccountRefused
from accounts.mailboxes import check_address, insert_mailbox
from accounts.notify import Notifier
from accounts.passwords import hash_secret
from accounts.signup import SignupForm
from accounts.working_hours import REVIEW_LIMIT_HOURS, working_hours_between
from storage import credentials, proofs
from storage import registrations as rows
from storage.accounts import Account
from storage.database import Database
from storage.errors import AlreadyExists
from storage.registrations import Registration
from storage.schema import accounts, registrations
from storage.types import utcnow

TOKEN_LIFETIME = timedelta(hours=48)
RESEND_INTERVAL = timedelta(minutes=5)
MAX_SENDS = 5
"""Confirmation e-mails one request may cause in all (the first and four re-sends)."""
MAX_REASON = 1000
USUAL_EMAIL = "usual_email"
"""Key in an account's settings: the usual address (OTP codes and notices go there)."""


class RegistrationRefused(AccountRefused):
    """A registration step that cannot be done; the message is French, for people."""


def token_hash(token: str) -> str:
    """The stored form of a confirmation token (256 random bits: SHA-256 suffices)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def fold_local(text: str) -> str:
    """``Hélène-Marie D'Ormesson`` → ``helene-marie-dormesson``: ASCII letters, digits and
    hyphens only, accents folded, apostrophes dropped, spaces as hyphens."""
    lowered = text.lower().replace("æ", "ae").replace("œ", "oe").replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", lowered)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    ascii_text = re.sub(r"['’]", "", ascii_text)
    ascii_text = re.sub(r"[^a-z0-9]+", "-", ascii_text)
    return ascii_text.strip("-")


@dataclass(frozen=True)
class QueueEntry:
    """A pending request as the review queue shows it."""

    registration: Registration
    age_hours: float
    late: bool
    suggested_address: str


class Registrar:
    """Registration steps against one database, writing system e-mails to ``outbox``."""

    def __init__(self, db: Database, outbox: Notifier, *, portal_url: str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.outbox = outbox
        self.portal_url = portal_url.rstrip("/")
        self.clock = clock

    # -- sign-up and confirmation --------------------------------------------------------
    async def sign_up(self, form: SignupForm) -> None:
        """Records the request and sends the link; for a known address, sends a notice.

        The caller answers the same in both cases (no account enumeration)."""
        now = self.clock()
        password_hash = await hash_secret(form.password)
        token = secrets.token_urlsafe(32)
        try:
            async with self.db.begin() as conn:
                reg = await rows.create(
                    conn, email=form.email, status="unconfirmed",
                    profession_type=form.profession_type, rpps=form.rpps, adeli=form.adeli,
                    surname=form.surname, given_name=form.given_name, company=form.company,
                    liberal=form.liberal, profession=form.profession, address1=form.address1,
                    address2=form.address2, postal_code=form.postal_code, city=form.city,
                    region=form.region, department=form.department, phone1=form.phone1,
                    phone2=form.phone2, password_hash=password_hash,
                    token_hash=token_hash(token), token_expires_at=now + TOKEN_LIFETIME,
                    token_sent_at=now, token_sends=1, created_at=now,
                )
                await proofs.append(conn, kind="account-created", actor=form.email,
                                    details={"registration": reg.id, "idnat": form.idnat})
        except AlreadyExists:
            await self._notice_existing(form.email, now)
            return
        await self._send_link(reg.email, token)

    async def _notice_existing(self, email: str, now: datetime) -> None:
        """Tells the owner of an address someone signed up with it again (throttled like
        links, so the form cannot be used to flood an inbox)."""
        async with self.db.begin() as conn:
            reg = await rows.get_by_email(conn, email)
            if reg is None or not self._may_send(reg, now):
                return
            await rows.update_fields(conn, reg.id, token_sent_at=now,
                                     token_sends=reg.token_sends + 1)
        await self.outbox.send(
            email, "Votre inscription à la messagerie sécurisée de santé",
            "Bonjour,\n\nUne inscription vient d'être demandée avec cette adresse, qui a déjà "
            "une demande en cours ou un compte.\nSi c'est vous, connectez-vous ou demandez un "
            f"nouveau lien de confirmation sur {self.portal_url}/.\nSinon, ignorez ce "
            "message : rien n'a été modifié.\n", kind="signup-duplicate")

    def _may_send(self, reg: Registration, now: datetime) -> bool:
        if reg.token_sends >= MAX_SENDS:
            return False
        return reg.token_sent_at is None or now - reg.token_sent_at >= RESEND_INTERVAL

    async def _send_link(self, email: str, token: str) -> None:
        link = f"{self.portal_url}/confirmer?jeton={token}"
        await self.outbox.send(
            email, "Confirmez votre inscription à la messagerie sécurisée de santé",
            "Bonjour,\n\nPour confirmer votre adresse e-mail et transmettre votre demande "
            f"d'inscription aux administrateurs, ouvrez ce lien dans les 48 heures :\n\n{link}"
            "\n\nVotre demande sera examinée sous 48 heures ouvrées.\nSi vous n'avez rien "
            "demandé, ignorez ce message.\n", kind="signup-confirmation")

    async def resend(self, email: str) -> None:
        """Sends a new link to a request still unconfirmed (the old link stops working);
        silently nothing for an unknown address or too soon after the last one."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        async with self.db.begin() as conn:
            reg = await rows.get_by_email(conn, email)
            if reg is None or reg.status != "unconfirmed" or not self._may_send(reg, now):
                return
            await rows.update_fields(
                conn, reg.id, token_hash=token_hash(token),
                token_expires_at=now + TOKEN_LIFETIME, token_sent_at=now,
                token_sends=reg.token_sends + 1)
        await self._send_link(reg.email, token)

    async def confirm(self, token: str) -> Registration:
        """Confirms the request the link belongs to; the link then no longer works."""
        now = self.clock()
        async with self.db.begin() as conn:
            reg = await rows.get_by_token_hash(conn, token_hash(token)) if token else None
            if reg is None or reg.status != "unconfirmed":
                raise RegistrationRefused(
                    "Ce lien de confirmation n'est pas valide ou a déjà été utilisé.")
            assert reg.token_expires_at is not None
            if now >= reg.token_expires_at:
                raise RegistrationRefused(
                    "Ce lien de confirmation a expiré (48 heures) : demandez-en un nouveau.")
            updated = await rows.update_fields(
                conn, reg.id, expect_status="unconfirmed", status="pending", token_hash=None,
                token_expires_at=None, confirmed_at=now)
            if not updated:
                raise RegistrationRefused(
                    "Ce lien de confirmation n'est pas valide ou a déjà été utilisé.")
            await proofs.append(conn, kind="account-confirmed", actor=reg.email,
                                details={"registration": reg.id})
            found = await rows.get(conn, reg.id)
        assert found is not None
        return found

    # -- review --------------------------------------------------------------------------
    async def queue(self) -> list[QueueEntry]:
        """Pending requests, oldest first, with their age in working hours."""
        now = self.clock()
        async with self.db.read() as conn:
            pending = await rows.list_by_status(conn, "pending")
        entries = []
        for reg in pending:
            age = working_hours_between(reg.confirmed_at or reg.created_at, now)
            entries.append(QueueEntry(reg, round(age, 1), age > REVIEW_LIMIT_HOURS,
                                      await self.suggest_address(reg)))
        return entries

    async def get(self, registration_id: int) -> Registration:
        async with self.db.read() as conn:
            reg = await rows.get(conn, registration_id)
        if reg is None:
            raise RegistrationRefused(f"La demande n° {registration_id} n'existe pas.")
        return reg

    async def find(self, key: str) -> Registration:
        """A request by number or by usual e-mail address (the command line's argument)."""
        if key.isdigit():
            return await self.get(int(key))
        async with self.db.read() as conn:
            reg = await rows.get_by_email(conn, key)
        if reg is None:
            raise RegistrationRefused(f"Aucune demande pour {key!r}.")
        return reg

    async def suggest_address(self, reg: Registration) -> str:
        """``prenom.nom@<primary domain>``, numbered from 2 when taken."""
        domain = self.db.settings.primary_domain
        base = f"{fold_local(reg.given_name) or 'pro'}.{fold_local(reg.surname) or 'sante'}"
        base = base[:60]
        async with self.db.read() as conn:
            taken = set((await conn.execute(
                select(accounts.c.address).where(accounts.c.address.like(f"{base}%@{domain}"))
            )).scalars())
            taken |= set((await conn.execute(
                select(registrations.c.address).where(
                    registrations.c.address.like(f"{base}%@{domain}"),
                    registrations.c.id != reg.id)
            )).scalars())
        candidate, n = f"{base}@{domain}", 2
        while candidate in taken:
            candidate, n = f"{base}{n}@{domain}", n + 1
        return candidate

    async def approve(self, registration_id: int, *, admin: str,
                      address: str | None = None) -> Account:
        """Creates the mailbox (PER, default folders, portal password) in one transaction
        with the decision and its proof, then sends the certification e-mail."""
        reg = await self.get(registration_id)
        if reg.status != "pending":
            raise RegistrationRefused(_not_pending(reg))
        wanted = (address or "").strip() or await self.suggest_address(reg)
        try:
            wanted = check_address(self.db.settings, wanted)
        except AccountRefused as exc:
            raise RegistrationRefused(f"Adresse refusée : {exc}") from None
        now = self.clock()
        name = f"{reg.given_name} {reg.surname}"
        try:
            async with self.db.begin() as conn:
                if not await rows.update_fields(
                        conn, reg.id, expect_status="pending", status="approved",
                        decided_at=now, decided_by=admin, address=wanted, password_hash=None):
                    raise RegistrationRefused(_not_pending(await self.get(reg.id)))
                account = await insert_mailbox(
                    conn, address=wanted, type="PER", name=name, given_name=reg.given_name,
                    surname=reg.surname, idnat=f"8{reg.rpps}" if reg.rpps else f"0{reg.adeli}",
                    structure_name=reg.company or None, settings={USUAL_EMAIL: reg.email})
                assert reg.password_hash is not None
                cred = await credentials.add(conn, account.id, "password", label="portail",
                                             secret_hash=reg.password_hash)
                await rows.update_fields(conn, reg.id, account_id=account.id)
                # Filed under the new mailbox's history (account:<address>), like every
                # later change of it, with the portal password it starts with.
                await audit.record(conn, "account-approved", wanted, admin,
                                   registration=reg.id, address=wanted)
                await audit.record(conn, "credential-added", wanted, admin,
                                   credential_id=cred.id, kind=cred.kind, label=cred.label,
                                   reason="registration")
        except AlreadyExists:
            raise RegistrationRefused(
                f"L'adresse {wanted} est déjà prise : choisissez-en une autre.") from None
        await self.outbox.send(
            reg.email, "Votre compte de messagerie sécurisée de santé est certifié",
            f"Bonjour {reg.given_name} {reg.surname},\n\nVotre demande a été acceptée. "
            f"Votre adresse de messagerie sécurisée de santé est :\n\n    {wanted}\n\n"
            f"Connectez-vous sur {self.portal_url}/connexion avec cette adresse et le mot de "
            "passe choisi à l'inscription ; un code à usage unique vous sera envoyé ici.\n",
            kind="signup-approved")
        return account

    async def reject(self, registration_id: int, *, admin: str, reason: str) -> Registration:
        """Rejects a pending request with a reason the professional receives."""
        reason = reason.strip()
        if not reason:
            raise RegistrationRefused("Indiquez le motif du refus : il est envoyé au demandeur.")
        if len(reason) > MAX_REASON:
            raise RegistrationRefused(f"Le motif dépasse {MAX_REASON} caractères.")
        reg = await self.get(registration_id)
        now = self.clock()
        async with self.db.begin() as conn:
            if not await rows.update_fields(
                    conn, reg.id, expect_status="pending", status="rejected", decided_at=now,
                    decided_by=admin, reason=reason, password_hash=None):
                raise RegistrationRefused(_not_pending(await self.get(reg.id)))
            await proofs.append(conn, kind="account-rejected", actor=admin,
                                details={"registration": reg.id, "reason": reason})
        await self.outbox.send(
            reg.email, "Votre demande d'inscription à la messagerie sécurisée de santé",
            f"Bonjour {reg.given_name} {reg.surname},\n\nVotre demande d'inscription n'a pas "
            f"été acceptée, pour le motif suivant :\n\n{reason}\n\nVous pouvez répondre à ce "
            "motif en contactant l'administrateur du service.\n", kind="signup-rejected")
        return await self.get(reg.id)


def _not_pending(reg: Registration) -> str:
    words = {"unconfirmed": "son adresse e-mail n'est pas encore confirmée",
             "approved": f"elle a déjà été acceptée ({reg.address})",
             "rejected": "elle a déjà été refusée"}
    return (f"La demande n° {reg.id} ne peut pas être traitée : "
            f"{words.get(reg.status, reg.status)}.")
