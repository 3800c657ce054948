"""Sharing a mailbox from the portal and the command line, with the rules people follow:

- **ORG** (organisational): created by an administrator for a structure, under a
  responsible professional who holds every right (administer ``a`` included) and may send
  as it; the responsible, a member holding ``a``, or an administrator adds and removes
  members with chosen rights. Members see it under ``Shared/`` in IMAP.
- **PER** (nominative): the holder alone gives a designated third party (a secretary) read,
  read-write access and, if wanted, the right to send as the holder; changes and revokes it.
- **APP** (applicative): no delegation; its page shows its certificate binding and whether
  it only sends or also receives (``app_mode`` in its settings, read by SMTP delivery).

Type and address never change after creation. Rights are RFC 4314 letters underneath
(:mod:`accounts.delegations`, which writes the proofs ``delegation-granted|changed|revoked``
naming the actor); here they are offered as three levels. Refusals are French sentences
naming the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts import audit, delegations
from accounts.delegations import ALL_RIGHTS
from accounts.errors import AccountRefused
from accounts.mailboxes import check_address, insert_mailbox
from storage import accounts as account_rows
from storage import credentials
from storage import delegations as delegation_rows
from storage.accounts import Account
from storage.database import Database
from storage.delegations import Delegation
from storage.errors import AlreadyExists
from trustspace.idnat import structure_problem

LEVELS = {"lecture": "lrs", "lecture-ecriture": "lrswipkxte", "gestion": ALL_RIGHTS}
"""The levels the portal offers, as RFC 4314 rights."""
LEVEL_WORDS = {"lecture": "lecture", "lecture-ecriture": "lecture et écriture",
               "gestion": "lecture, écriture et gestion des membres"}
PER_LEVELS = ("lecture", "lecture-ecriture")
"""A nominative mailbox's holder cannot hand its management over."""
RESPONSIBLE = "responsible"
"""Key in an ORG mailbox's settings: its responsible professional's address."""
APP_MODE = "app_mode"
"""Key in an APP mailbox's settings: SEND_ONLY or SEND_AND_RECEIVE (the default)."""
SEND_ONLY = "send-only"
SEND_AND_RECEIVE = "send-and-receive"
APP_MODES = {SEND_ONLY: "envoi seulement", SEND_AND_RECEIVE: "envoi et réception"}


def level_of(rights: str) -> str:
    """The portal's level for RFC 4314 rights (the highest level they include)."""
    for level in ("gestion", "lecture-ecriture", "lecture"):
        if set(LEVELS[level]) <= set(rights):
            return level
    return "lecture"


def rights_for(level: str, allowed: tuple[str, ...] = tuple(LEVELS)) -> str:
    if level not in allowed:
        raise AccountRefused(f"Niveau d'accès {level[:40]!r} inconnu : choisissez parmi "
                             f"{', '.join(allowed)}.")
    return LEVELS[level]


async def _get(db: Database, address: str) -> Account:
    async with db.read() as conn:
        found = await account_rows.get_by_address(conn, address.strip().lower())
    if found is None:
        raise AccountRefused(f"L'adresse {address.strip()[:320]!r} n'a pas de boîte ici.")
    return found


async def _active_member(db: Database, address: str) -> Account:
    member = await _get(db, address)
    if member.status != "active":
        raise AccountRefused(f"La boîte {member.address!r} n'est pas active : elle ne peut "
                             "pas recevoir d'accès.")
    if member.type == "APP":
        raise AccountRefused(f"La boîte {member.address!r} est applicative : elle ne peut "
                             "pas recevoir d'accès à une autre boîte.")
    return member


# -- ORG ----------------------------------------------------------------------------------


async def create_org(db: Database, address: str, *, name: str, responsible: str,
                     structure_id: str | None = None, structure_name: str | None = None,
                     actor: str | None) -> Account:
    """Creates an active ORG mailbox whose ``responsible`` holds every right and send-as;
    ``account-created`` and ``delegation-granted`` proofs name ``actor`` (None: operator)."""
    try:
        address = check_address(db.settings, address)
    except AccountRefused:
        raise AccountRefused(
            f"L'adresse {address.strip()[:320]!r} n'est pas valable ici (forme "
            f"prenom.nom@domaine, domaines : {', '.join(db.settings.gateway.domains)}).",
        ) from None
    if not name.strip():
        raise AccountRefused("Donnez un nom à la boîte organisationnelle (--name).")
    if structure_id and (problem := structure_problem(structure_id)):
        raise AccountRefused(f"Structure {structure_id!r} : {problem}")
    chief = await _active_member(db, responsible)
    if chief.type != "PER":
        raise AccountRefused(f"Le responsable {chief.address!r} doit être un professionnel "
                             "(boîte nominative).")
    try:
        async with db.begin() as conn:
            account = await insert_mailbox(
                conn, address=address, type="ORG", name=name.strip(), given_name="",
                surname=name.strip(), structure_id=structure_id,
                structure_name=structure_name, settings={RESPONSIBLE: chief.address})
            await audit.record(conn, "account-created", address, actor, type="ORG",
                               status="active", responsible=chief.address)
            await delegation_rows.grant(conn, account.id, chief.id, ALL_RIGHTS, True)
            await audit.record(conn, "delegation-granted", address, actor,
                               delegate=chief.address, rights=ALL_RIGHTS, send_as=True)
    except AlreadyExists:
        raise AccountRefused(f"L'adresse {address!r} a déjà une boîte.") from None
    return account


async def may_manage(db: Database, mailbox: Account, user: Account) -> bool:
    """Administrators manage every ORG mailbox; its responsible and members holding ``a``
    manage theirs; a PER mailbox is managed by its holder only."""
    if mailbox.type == "PER":
        return user.id == mailbox.id
    if mailbox.type != "ORG":
        return user.is_admin
    return user.is_admin or await delegations.may_manage(db, mailbox.id, user.id)


async def _org(db: Database, address: str) -> Account:
    org = await _get(db, address)
    if org.type != "ORG":
        raise AccountRefused(f"La boîte {org.address!r} n'est pas organisationnelle.")
    if org.status == "closed":
        raise AccountRefused(f"La boîte {org.address!r} est fermée.")
    return org


async def _check_manager(db: Database, mailbox: Account, by: Account | None) -> None:
    if by is not None and not await may_manage(db, mailbox, by):
        raise AccountRefused(f"Vous ne pouvez pas gérer les accès de {mailbox.address!r} : "
                             "seuls son responsable, ses gestionnaires et les "
                             "administrateurs le peuvent.")


async def set_member(db: Database, org_address: str, member: str, rights: str, *,
                     send_as: bool, by: Account | None, actor: str | None) -> Delegation:
    """Adds ``member`` to an ORG mailbox, or changes its rights (RFC 4314 letters);
    ``by`` None is the operator."""
    org = await _org(db, org_address)
    await _check_manager(db, org, by)
    person = await _active_member(db, member)
    if person.id == org.id:
        raise AccountRefused(f"La boîte {org.address!r} ne peut pas être membre d'elle-même.")
    try:
        letters = delegations.parse_rights(rights)
    except AccountRefused:
        raise AccountRefused(f"Droits {rights[:40]!r} incompris : lettres RFC 4314 parmi "
                             f"{ALL_RIGHTS!r} (par exemple 'lrs' pour la lecture).") from None
    if person.address == org.settings.get(RESPONSIBLE) and "a" not in letters:
        raise AccountRefused(f"{person.address!r} est le responsable de {org.address!r} : "
                             "il garde le droit de gérer la boîte.")
    return await delegations.grant(db, org.address, person.address, letters,
                                   can_send_as=send_as, actor=actor)


async def remove_member(db: Database, org_address: str, member: str, *,
                        by: Account | None, actor: str | None) -> None:
    org = await _org(db, org_address)
    await _check_manager(db, org, by)
    person = await _get(db, member)
    if person.address == org.settings.get(RESPONSIBLE):
        raise AccountRefused(f"{person.address!r} est le responsable de {org.address!r} : "
                             "il ne peut pas être retiré.")
    async with db.read() as conn:
        held = await delegation_rows.get(conn, org.id, person.id)
    if held is None:
        raise AccountRefused(f"{person.address!r} n'est pas membre de {org.address!r}.")
    await delegations.revoke(db, org.address, person.address, actor=actor)


# -- PER ----------------------------------------------------------------------------------


async def delegate_per(db: Database, holder: Account, third: str, level: str, *,
                       send_as: bool) -> Delegation:
    """The holder of a nominative mailbox gives (or changes) a third party's access."""
    if holder.type != "PER":
        raise AccountRefused("Seul le titulaire d'une boîte nominative délègue ainsi son "
                             "accès.")
    letters = rights_for(level, PER_LEVELS)
    person = await _active_member(db, third)
    if person.id == holder.id:
        raise AccountRefused("Vous ne pouvez pas vous déléguer votre propre boîte.")
    return await delegations.grant(db, holder.address, person.address, letters,
                                   can_send_as=send_as, by=holder.address)


async def undelegate_per(db: Database, holder: Account, third: str) -> None:
    person = await _get(db, third)
    async with db.read() as conn:
        held = await delegation_rows.get(conn, holder.id, person.id)
    if held is None:
        raise AccountRefused(f"{person.address!r} n'a pas d'accès à votre boîte.")
    await delegations.revoke(db, holder.address, person.address, by=holder.address)


# -- APP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppBinding:
    """What opens an APP mailbox: its structure's applicative certificate, and any
    certificate registered for it by fingerprint."""

    structure_id: str | None
    structure_name: str | None
    fingerprints: list[str]
    mode: str


async def app_binding(db: Database, app: Account) -> AppBinding:
    async with db.read() as conn:
        certs = await credentials.list_for_account(conn, app.id, kind="certificate")
    return AppBinding(app.structure_id, app.structure_name,
                      [c.cert_fingerprint or "" for c in certs],
                      str(app.settings.get(APP_MODE, SEND_AND_RECEIVE)))


async def set_app_mode(db: Database, address: str, mode: str, *,
                       actor: str | None) -> Account:
    """Sets an APP mailbox to send only or send and receive (SMTP delivery refuses mail
    to a send-only one with 5.2.1 once its cached lookup expires). A real change appends an
    ``account-changed`` proof (setting ``app_mode``, from, to) naming ``actor`` (None: the
    operator) in the same transaction: whether a hospital system's mailbox accepted mail on
    a given day is a fact the operator answers for."""
    if mode not in APP_MODES:
        raise AccountRefused(f"Mode {mode[:40]!r} inconnu : {', '.join(APP_MODES)}.")
    app = await _get(db, address)
    if app.type != "APP":
        raise AccountRefused(f"La boîte {app.address!r} n'est pas applicative.")
    async with db.begin() as conn:
        current = await account_rows.get_by_id(conn, app.id)
        assert current is not None
        before = str(current.settings.get(APP_MODE, SEND_AND_RECEIVE))
        if before != mode:
            await account_rows.update_fields(conn, app.id, settings={**current.settings,
                                                                     APP_MODE: mode})
            await audit.record_change(conn, app.address, actor, APP_MODE, before, mode)
        found = await account_rows.get_by_id(conn, app.id)
    assert found is not None
    return found
