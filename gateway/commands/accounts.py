"""``mssante accounts``: create and list mailboxes from the command line."""

from __future__ import annotations

import click

from accounts.audit import operator_actor
from accounts.errors import AccountRefused
from accounts.mailboxes import MAILBOX_TYPES, add_mailbox
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from storage import accounts as account_rows


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
@click.option("--status", default=None, help="Only accounts with this status.")
@pass_cli
def list_(cli: CliContext, status: str | None) -> None:
    """List mailboxes."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                rows = await account_rows.list_accounts(conn, status=status, limit=100000)
        finally:
            await db.close()
        for a in rows:
            click.echo(f"{a.address}\t{a.type}\t{a.status}\t{a.display_name}")

    run_command(run())
