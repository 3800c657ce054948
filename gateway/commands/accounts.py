"""``mssante accounts``: create and list mailboxes from the command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

from accounts import app_passwords
from accounts.audit import operator_actor
from accounts.errors import AccountRefused
from accounts.mailboxes import MAILBOX_TYPES, add_mailbox
from accounts.notify import notifier_for
from accounts.portal_password import set_portal_password
from accounts.registrations import USUAL_EMAIL, Registrar
from config import Settings
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from storage import accounts as account_rows
from storage.database import Database
from storage.schema import ACCOUNT_STATUSES


@click.group("accounts")
def command() -> None:
    """Mailboxes: nominative (PER), organisational (ORG), applicative (APP)."""


@command.command("add")
@click.argument("address")
@click.option("--type", "mailbox_type", type=click.Choice(MAILBOX_TYPES), default="PER",
              show_default=True, help="Mailbox type.")
@click.option("--name", required=True, help='Display name, e.g. "Dr Alice Martin".')
@click.option("--idnat", default=None, help="idNatPS of the holder (PER): 8+RPPS or 0+ADELI.")
@click.option("--structure", default=None, help="FINESS or SIRET of the structure (APP, ORG).")
@click.option("--structure-name", default=None, help="Name of the structure.")
@click.option("--admin", is_flag=True, help="Give the holder the administrator role.")
@pass_cli
def add(
    cli: CliContext, address: str, mailbox_type: str, name: str, idnat: str | None,
    structure: str | None, structure_name: str | None, admin: bool,
) -> None:
    """Create an active mailbox with its default folders and print its application password."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            created = await add_mailbox(
                db, address, type=mailbox_type, name=name, idnat=idnat,
                structure_id=structure, structure_name=structure_name, is_admin=admin,
                actor=operator_actor(),
            )
        finally:
            await db.close()
        click.echo(f"mailbox {created.account.address} ({created.account.type}) created")
        click.echo(f"application password (shown once): {created.app_password}")

    try:
        run_command(run())
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@command.command("list")
@click.option("--status", default=None,
              help="Only accounts with this status: pending, active, suspended, closed.")
@click.option("--search", default=None,
              help="Only accounts whose address or name contains this text.")
@pass_cli
def list_(cli: CliContext, status: str | None, search: str | None) -> None:
    """List mailboxes: address, type, status, name (tab-separated)."""
    if status is not None and status not in ACCOUNT_STATUSES:
        fail(f"status {status!r} is not one of {', '.join(ACCOUNT_STATUSES)}", EXIT_USAGE)

    async def body(_settings: Settings, db: Database) -> None:
        async with db.read() as conn:
            rows = await account_rows.list_accounts(conn, status=status, search=search,
                                                    limit=100000)
        for a in rows:
            click.echo(f"{a.address}\t{a.type}\t{a.status}\t{a.display_name}")

    _run_refusable(cli, body)


# -- registrations: the review queue from the command line --------------------------------


def _registrar(settings: Settings, db: Database) -> Registrar:
    """The same registrar the portal uses; links name ``[web] public_url`` or the host."""
    url = settings.web.public_url or (
        f"https://{settings.hostname}" + ("" if settings.web.port == 443
                                          else f":{settings.web.port}"))
    return Registrar(db, notifier_for(settings), portal_url=url)


def _run_refusable(cli: CliContext, body: Callable[[Settings, Database],
                                                   Awaitable[None]]) -> None:
    """Opens the storage, runs ``body``; a refusal is one line on stderr and exit 2."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            await body(settings, db)
        finally:
            await db.close()

    try:
        run_command(run())
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@command.command("pending")
@pass_cli
def pending(cli: CliContext) -> None:
    """List the sign-up requests awaiting review, oldest first, with their age."""
    async def body(settings: Settings, db: Database) -> None:
        for e in await _registrar(settings, db).queue():
            r = e.registration
            late = "\tLATE" if e.late else ""
            click.echo(f"{r.id}\t{r.email}\t{r.given_name} {r.surname}\t"
                       f"{e.age_hours}h\t{e.suggested_address}{late}")

    _run_refusable(cli, body)


@command.command("show")
@click.argument("key")
@pass_cli
def show(cli: CliContext, key: str) -> None:
    """Show a mailbox (by its address) or a sign-up request (by number or usual address)."""
    async def body(settings: Settings, db: Database) -> None:
        async with db.read() as conn:
            account = await account_rows.get_by_address(conn, key)
        if account is not None:
            for name in ("address", "type", "status", "display_name", "idnat", "is_admin",
                         "created_at"):
                click.echo(f"{name}: {getattr(account, name)}")
            if usual := account.settings.get(USUAL_EMAIL):
                click.echo(f"usual_email: {usual}")
            return
        reg = await _registrar(settings, db).find(key)
        for name in ("id", "status", "email", "surname", "given_name", "profession_type",
                     "profession", "rpps", "adeli", "company", "liberal", "address1",
                     "address2", "postal_code", "city", "department", "region", "phone1",
                     "phone2", "created_at", "confirmed_at", "decided_at", "decided_by",
                     "reason", "address"):
            value = getattr(reg, name)
            if value not in (None, ""):
                click.echo(f"{name}: {value}")

    _run_refusable(cli, body)


@command.command("approve")
@click.argument("request")
@click.option("--address", default=None,
              help="MSSanté address to create (default: prenom.nom@<primary domain>).")
@click.option("--by", "admin", default="cli", show_default=True,
              help="Who decides (recorded in the proof).")
@pass_cli
def approve(cli: CliContext, request: str, address: str | None, admin: str) -> None:
    """Approve a confirmed sign-up request (number or usual address): create the mailbox."""
    async def body(settings: Settings, db: Database) -> None:
        registrar = _registrar(settings, db)
        reg = await registrar.find(request)
        account = await registrar.approve(reg.id, admin=admin, address=address)
        click.echo(f"request {reg.id} approved: mailbox {account.address} created; "
                   f"certification e-mail written for {reg.email}")

    _run_refusable(cli, body)


@command.command("reject")
@click.argument("request")
@click.option("--reason", required=True, help="Why (sent to the applicant).")
@click.option("--by", "admin", default="cli", show_default=True,
              help="Who decides (recorded in the proof).")
@pass_cli
def reject(cli: CliContext, request: str, reason: str, admin: str) -> None:
    """Reject a confirmed sign-up request with a reason sent to the applicant."""
    async def body(settings: Settings, db: Database) -> None:
        registrar = _registrar(settings, db)
        reg = await registrar.find(request)
        await registrar.reject(reg.id, admin=admin, reason=reason)
        click.echo(f"request {reg.id} rejected; e-mail written for {reg.email}")

    _run_refusable(cli, body)


@command.command("portal-password")
@click.argument("address")
@click.option("--usual-email", required=True,
              help="The holder's usual e-mail address (sign-in codes are sent there).")
@click.password_option("--password", prompt="Portal password",
                       help="The new portal password (asked when not given).")
@pass_cli
def portal_password(cli: CliContext, address: str, usual_email: str, password: str) -> None:
    """Set the portal password of a mailbox created by an operator (e.g. the administrator)."""
    async def body(_settings: Settings, db: Database) -> None:
        await set_portal_password(db, address, password, usual_email)
        click.echo(f"portal password of {address.strip().lower()} set; sign-in codes go to "
                   f"{usual_email.strip().lower()}")

    _run_refusable(cli, body)


# -- application passwords --------------------------------------------------------------


@command.group("app-password")
def app_password() -> None:
    """Application passwords of a mailbox (one per device, shown once, revocable)."""


@app_password.command("create")
@click.argument("address")
@click.option("--label", required=True, help='Device name, e.g. "Thunderbird cabinet".')
@pass_cli
def app_password_create(cli: CliContext, address: str, label: str) -> None:
    """Create a named application password and print it (shown once)."""
    async def body(_settings: Settings, db: Database) -> None:
        created = await app_passwords.create(db, address, label, actor=operator_actor())
        click.echo(f"application password {created.credential.id} "
                   f"({created.credential.label}) created")
        click.echo(f"password (shown once): {created.password}")

    _run_refusable(cli, body)


@app_password.command("list")
@click.argument("address")
@pass_cli
def app_password_list(cli: CliContext, address: str) -> None:
    """List the live application passwords: number, name, created, last used."""
    async def body(_settings: Settings, db: Database) -> None:
        for c in await app_passwords.list_live(db, address):
            used = c.last_used_at.isoformat(timespec="seconds") if c.last_used_at else "never"
            click.echo(f"{c.id}\t{c.label}\t{c.created_at.isoformat(timespec='seconds')}\t"
                       f"{used}")

    _run_refusable(cli, body)


@app_password.command("revoke")
@click.argument("address")
@click.argument("number", type=int)
@pass_cli
def app_password_revoke(cli: CliContext, address: str, number: int) -> None:
    """Revoke application password NUMBER of ADDRESS (open sessions with it end)."""
    async def body(_settings: Settings, db: Database) -> None:
        revoked = await app_passwords.revoke(db, address, number, actor=operator_actor())
        click.echo(f"application password {revoked.id} ({revoked.label}) revoked")

    _run_refusable(cli, body)
