"""Sign-up → confirmation link → review → approval or rejection, on a real database.

The system e-mails are read from the outbox files, as a newcomer would read them.
"""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from accounts.errors import AccountRefused
from accounts.mailboxes import add_mailbox
from accounts.notify import Outbox
from accounts.passwords import verify_secret
from accounts.registrations import (
    MAX_SENDS,
    Registrar,
    RegistrationRefused,
    fold_local,
    token_hash,
)
from accounts.signup import check_signup
from storage import credentials
from storage import proofs as ledger
from storage import registrations as reg_rows
from storage.accounts import get_by_address
from storage.database import Database
from storage.schema import proofs
from tests.accounts.registration_data import signup_data


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday

    def __call__(self) -> datetime:
        return self.now


def mails(outbox: Outbox) -> list[tuple[str, str, str]]:
    """(to, subject, body) of every outbox file, oldest first."""
    out = []
    for path in sorted(outbox.directory.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(("plain",))
        assert body is not None
        out.append((str(msg["To"]), str(msg["Subject"]), body.get_content()))
    return out


def link_token(body: str) -> str:
    match = re.search(r"/confirmer\?jeton=([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(1)


def registrar(db: Database, tmp_path: Path, clock: Clock) -> Registrar:
    return Registrar(db, Outbox(tmp_path / "outbox", "ne-pas-repondre@mssante.test"),
                     portal_url="https://portail.mssante.test:8443", clock=clock)


async def signed_up(reg: Registrar, **changes: str) -> str:
    form = check_signup(signup_data(**changes)).form
    assert form is not None
    await reg.sign_up(form)
    return link_token(mails(reg.outbox)[-1][2])


async def proof_kinds(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(select(proofs.c.kind).order_by(proofs.c.seq))).scalars())


async def test_whole_cycle_to_an_active_mailbox(database: Database, tmp_path: Path) -> None:
    clock = Clock()
    reg = registrar(database, tmp_path, clock)
    token = await signed_up(reg)
    [(to, subject, body)] = mails(reg.outbox)
    assert to == "helene.dupont@exemple.fr" and "Confirmez" in subject
    assert "https://portail.mssante.test:8443/confirmer?jeton=" in body
    [path] = reg.outbox.directory.glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with database.read() as conn:
        stored = await reg_rows.get_by_email(conn, "helene.dupont@exemple.fr")
    assert stored is not None and stored.status == "unconfirmed"
    assert stored.token_hash == token_hash(token) and token not in str(stored)
    assert stored.password_hash and await verify_secret(stored.password_hash, "Vx7#quarante")

    confirmed = await reg.confirm(token)
    assert confirmed.status == "pending"
    with pytest.raises(RegistrationRefused, match="déjà été utilisé"):
        await reg.confirm(token)  # single use

    clock.now += timedelta(hours=3)
    [entry] = await reg.queue()
    assert entry.suggested_address == "helene.dupont@mssante.test"
    assert entry.age_hours == 3.0 and not entry.late

    account = await reg.approve(entry.registration.id, admin="postmaster@mssante.test")
    assert account.address == "helene.dupont@mssante.test" and account.status == "active"
    assert account.type == "PER" and account.idnat == "8" + (confirmed.rpps or "")
    assert account.settings == {"usual_email": "helene.dupont@exemple.fr"}
    async with database.read() as conn:
        [cred] = await credentials.list_for_account(conn, account.id)
    assert cred.kind == "password" and cred.secret_hash
    assert await verify_secret(cred.secret_hash, "Vx7#quarante")
    to, subject, body = mails(reg.outbox)[-1]
    assert "certifié" in subject and "helene.dupont@mssante.test" in body
    assert await proof_kinds(database) == [
        "account-created", "account-confirmed", "account-approved", "credential-added"]
    async with database.read() as conn:  # the approval opens the mailbox's own history
        history = await ledger.get_by_message(conn, "account:helene.dupont@mssante.test")
    assert [(p.kind, p.actor) for p in history] == [
        ("account-approved", "postmaster@mssante.test"),
        ("credential-added", "postmaster@mssante.test")]
    assert history[1].details["credential_id"] == cred.id
    with pytest.raises(RegistrationRefused, match="déjà été acceptée"):
        await reg.approve(entry.registration.id, admin="postmaster@mssante.test")
    assert await reg.queue() == []


async def test_rejection_with_a_reason(sqlite_database: Database, tmp_path: Path) -> None:
    reg = registrar(sqlite_database, tmp_path, Clock())
    confirmed = await reg.confirm(await signed_up(reg))
    with pytest.raises(RegistrationRefused, match="motif"):
        await reg.reject(confirmed.id, admin="postmaster@mssante.test", reason="  ")
    rejected = await reg.reject(confirmed.id, admin="postmaster@mssante.test",
                                reason="Numéro RPPS inconnu du répertoire.")
    assert rejected.status == "rejected" and rejected.password_hash is None
    to, _subject, body = mails(reg.outbox)[-1]
    assert to == "helene.dupont@exemple.fr" and "Numéro RPPS inconnu" in body
    assert (await proof_kinds(sqlite_database))[-1] == "account-rejected"
    with pytest.raises(RegistrationRefused, match="déjà été refusée"):
        await reg.approve(confirmed.id, admin="postmaster@mssante.test")


async def test_an_unconfirmed_request_cannot_be_approved(
    sqlite_database: Database, tmp_path: Path,
) -> None:
    reg = registrar(sqlite_database, tmp_path, Clock())
    await signed_up(reg)
    stored = await reg.find("helene.dupont@exemple.fr")
    with pytest.raises(RegistrationRefused, match="pas encore confirmée"):
        await reg.approve(stored.id, admin="postmaster@mssante.test")


async def test_link_expires_after_48_hours(sqlite_database: Database, tmp_path: Path) -> None:
    clock = Clock()
    reg = registrar(sqlite_database, tmp_path, clock)
    token = await signed_up(reg)
    clock.now += timedelta(hours=48)
    with pytest.raises(RegistrationRefused, match="expiré"):
        await reg.confirm(token)
    with pytest.raises(RegistrationRefused, match="pas valide"):
        await reg.confirm("n'importe-quoi")


async def test_resend_is_throttled_and_replaces_the_link(
    sqlite_database: Database, tmp_path: Path,
) -> None:
    clock = Clock()
    reg = registrar(sqlite_database, tmp_path, clock)
    first = await signed_up(reg)
    await reg.resend("helene.dupont@exemple.fr")  # too soon: nothing
    assert len(mails(reg.outbox)) == 1
    clock.now += timedelta(minutes=5)
    await reg.resend("HELENE.dupont@exemple.fr")
    assert len(mails(reg.outbox)) == 2
    second = link_token(mails(reg.outbox)[-1][2])
    assert second != first
    with pytest.raises(RegistrationRefused):
        await reg.confirm(first)  # the old link no longer works
    for _ in range(10):
        clock.now += timedelta(minutes=6)
        await reg.resend("helene.dupont@exemple.fr")
    assert len(mails(reg.outbox)) == MAX_SENDS
    await reg.resend("inconnu@exemple.fr")  # silently nothing
    assert len(mails(reg.outbox)) == MAX_SENDS
    assert (await reg.confirm(link_token(mails(reg.outbox)[-1][2]))).status == "pending"


async def test_second_sign_up_with_a_known_address_sends_a_notice_not_a_link(
    sqlite_database: Database, tmp_path: Path,
) -> None:
    clock = Clock()
    reg = registrar(sqlite_database, tmp_path, clock)
    await signed_up(reg)
    clock.now += timedelta(minutes=10)
    form = check_signup(signup_data(surname="Autre")).form
    assert form is not None
    await reg.sign_up(form)  # returns the same way as a first sign-up
    to, _subject, body = mails(reg.outbox)[-1]
    assert to == "helene.dupont@exemple.fr" and "déjà" in body and "jeton" not in body
    assert (await reg.find("helene.dupont@exemple.fr")).surname == "Dupont"
    assert await proof_kinds(sqlite_database) == ["account-created"]


def test_fold_local() -> None:
    assert fold_local("Hélène-Marie") == "helene-marie"
    assert fold_local("D'Ormesson") == "dormesson"
    assert fold_local("Le Goff") == "le-goff"
    assert fold_local("Œdipe Straße") == "oedipe-strasse"
    assert fold_local("Çağlar") == "caglar"


async def test_address_collisions_are_numbered_and_editable(
    sqlite_database: Database, tmp_path: Path,
) -> None:
    reg = registrar(sqlite_database, tmp_path, Clock())
    await add_mailbox(sqlite_database, "helene.dupont@mssante.test", type="PER",
                      name="Hélène Dupont", idnat="810000000001")
    await add_mailbox(sqlite_database, "helene.dupont2@mssante.test", type="PER",
                      name="Hélène Dupont", idnat="810000000002")
    confirmed = await reg.confirm(await signed_up(reg))
    [entry] = await reg.queue()
    assert entry.suggested_address == "helene.dupont3@mssante.test"
    with pytest.raises(RegistrationRefused, match="déjà prise"):
        await reg.approve(confirmed.id, admin="a@mssante.test",
                          address="helene.dupont2@mssante.test")
    with pytest.raises(RegistrationRefused, match="not served here"):
        await reg.approve(confirmed.id, admin="a@mssante.test", address="h@ailleurs.fr")
    account = await reg.approve(confirmed.id, admin="a@mssante.test",
                                address="Dr.H.Dupont@mssante.test")
    assert account.address == "dr.h.dupont@mssante.test"
    async with sqlite_database.read() as conn:
        assert await get_by_address(conn, "dr.h.dupont@mssante.test") is not None
    assert isinstance(RegistrationRefused("x"), AccountRefused)
