"""``mssante accounts org create|add-member|remove-member`` and ``mssante accounts
app-mode``: organisational mailboxes and applicative ones, with the rules of
:mod:`accounts.sharing` (the same as the portal's), the operator as actor of the proofs.
"""

from __future__ import annotations

import click

from accounts import sharing
from accounts.audit import operator_actor
from accounts.delegations import ALL_RIGHTS
from config import Settings
from gateway.commands import accounts as accounts_command
from gateway.commands.accounts import _run_refusable
from gateway.context import CliContext, pass_cli
from storage.database import Database


@click.group("org")
def org() -> None:
    """Organisational (ORG) mailboxes: creation under a responsible, members."""


@org.command("create")
@click.argument("address")
@click.option("--responsible", required=True,
              help="Address of the responsible professional's nominative mailbox.")
@click.option("--name", default=None, help="Display name (default: the address' local part).")
@click.option("--structure", default=None, help="FINESS or SIRET of the structure.")
@click.option("--structure-name", default=None, help="Name of the structure.")
@pass_cli
def create(cli: CliContext, address: str, responsible: str, name: str | None,
           structure: str | None, structure_name: str | None) -> None:
    """Create ORG mailbox ADDRESS; its responsible holds every right and may send as it."""
    async def body(_settings: Settings, db: Database) -> None:
        account = await sharing.create_org(
            db, address, name=name or address.partition("@")[0], responsible=responsible,
            structure_id=structure, structure_name=structure_name, actor=operator_actor())
        click.echo(f"mailbox {account.address} (ORG) created; responsible "
                   f"{account.settings[sharing.RESPONSIBLE]}")

    _run_refusable(cli, body)


@org.command("add-member")
@click.argument("address")
@click.argument("member")
@click.option("--rights", default="lrs", show_default=True,
              help=f"RFC 4314 letters among {ALL_RIGHTS!r} ('a' lets the member manage).")
@click.option("--send-as", is_flag=True, help="Let the member send as the mailbox.")
@pass_cli
def add_member(cli: CliContext, address: str, member: str, rights: str,
               send_as: bool) -> None:
    """Give MEMBER RIGHTS on ORG mailbox ADDRESS (replaces earlier rights)."""
    async def body(_settings: Settings, db: Database) -> None:
        d = await sharing.set_member(db, address, member, rights, send_as=send_as, by=None,
                                     actor=operator_actor())
        click.echo(f"{d.delegate} holds {d.rights} on {d.owner}"
                   + (" and may send as it" if d.can_send_as else ""))

    _run_refusable(cli, body)


@org.command("remove-member")
@click.argument("address")
@click.argument("member")
@pass_cli
def remove_member(cli: CliContext, address: str, member: str) -> None:
    """Take MEMBER out of ORG mailbox ADDRESS (not its responsible)."""
    async def body(_settings: Settings, db: Database) -> None:
        await sharing.remove_member(db, address, member, by=None, actor=operator_actor())
        click.echo(f"{member.strip().lower()} is no longer a member of "
                   f"{address.strip().lower()}")

    _run_refusable(cli, body)


@click.command("app-mode")
@click.argument("address")
@click.argument("mode", metavar="send-only|send-and-receive")
@pass_cli
def app_mode(cli: CliContext, address: str, mode: str) -> None:
    """Set whether APP mailbox ADDRESS only sends or also receives mail."""
    async def body(_settings: Settings, db: Database) -> None:
        account = await sharing.set_app_mode(db, address, mode, actor=operator_actor())
        click.echo(f"{account.address}: {account.settings[sharing.APP_MODE]}")

    _run_refusable(cli, body)


accounts_command.command.add_command(org)
accounts_command.command.add_command(app_mode)
