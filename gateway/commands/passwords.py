"""``mssante accounts password add|revoke|list``: a mailbox's application passwords.

One password per device, revocable on its own (DESIGN.md §1 rule 3). Each change is
proved in the ledger under ``account:<address>`` naming ``operator:<unix user>``. The
command hangs under ``mssante accounts`` (added when the command line loads).
"""

from __future__ import annotations

import click

from accounts.app_passwords import add_app_password, list_credentials, revoke_credential
from accounts.audit import operator_actor
from accounts.errors import AccountRefused
from gateway.commands import accounts as accounts_command
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage


@click.group("password")
def password() -> None:
    """Application passwords of a mailbox (one per device)."""


@password.command("add")
@click.argument("address")
@click.option("--label", required=True, help='The device it is for, e.g. "phone".')
@pass_cli
def add(cli: CliContext, address: str, label: str) -> None:
    """Create an application password for ADDRESS and print it once."""
    settings = cli.settings()

    async def run() -> str:
        db = await open_storage(settings)
        try:
            new = await add_app_password(db, address, label, actor=operator_actor())
        finally:
            await db.close()
        return (f"application password id {new.credential.id} ({new.credential.label}) "
                f"for {address.strip().lower()}, shown once: {new.password}")

    try:
        click.echo(run_command(run()))
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@password.command("revoke")
@click.argument("address")
@click.argument("credential_id", type=int)
@pass_cli
def revoke(cli: CliContext, address: str, credential_id: int) -> None:
    """Revoke credential CREDENTIAL_ID of ADDRESS (its open sessions end at once)."""
    settings = cli.settings()

    async def run() -> str:
        db = await open_storage(settings)
        try:
            found = await revoke_credential(db, address, credential_id,
                                            actor=operator_actor())
        finally:
            await db.close()
        return f"credential {found.id} ({found.label}) of {address.strip().lower()} revoked"

    try:
        click.echo(run_command(run()))
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@password.command("list")
@click.argument("address")
@pass_cli
def list_(cli: CliContext, address: str) -> None:
    """List the credentials of ADDRESS (id, kind, label, created, revoked)."""
    settings = cli.settings()

    async def run() -> list[str]:
        db = await open_storage(settings)
        try:
            found = await list_credentials(db, address)
        finally:
            await db.close()
        return [f"{c.id}\t{c.kind}\t{c.label}\t{c.created_at.isoformat()}\t"
                f"{c.revoked_at.isoformat() if c.revoked_at else '-'}" for c in found]

    try:
        for line in run_command(run()):
            click.echo(line)
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


accounts_command.command.add_command(password)
