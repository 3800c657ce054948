"""``mssante accounts suspend|reactivate|close ADDRESS`` (the rules of
:mod:`accounts.lifecycle`, the same as the portal's) and the lower-level
``mssante accounts status ADDRESS active|suspended|closed`` (a closed mailbox stays closed).

Takes effect at once in open sessions too (IMAP ``BYE``, submission refuses the next
MAIL FROM), on every gateway node using the same database; see :mod:`accounts.access`.
The command hangs under ``mssante accounts`` (added when the command line loads).
"""

from __future__ import annotations

import click

from accounts import lifecycle
from accounts.audit import operator_actor
from accounts.errors import AccountRefused
from accounts.mailboxes import set_status
from gateway.commands import accounts as accounts_command
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage


@click.command("status")
@click.argument("address")
@click.argument("status")
@pass_cli
def status(cli: CliContext, address: str, status: str) -> None:
    """Set the status of ADDRESS: active, suspended or closed."""
    settings = cli.settings()

    async def run() -> str:
        db = await open_storage(settings)
        try:
            account = await set_status(db, address, status, actor=operator_actor())
        finally:
            await db.close()
        return f"{account.address}: {account.status}"

    try:
        click.echo(run_command(run()))
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


accounts_command.command.add_command(status)


def _life_cycle_command(action: str, summary: str) -> click.Command:
    @click.command(action)
    @click.argument("address")
    @pass_cli
    def command(cli: CliContext, address: str) -> None:
        settings = cli.settings()

        async def run() -> str:
            db = await open_storage(settings)
            try:
                account = await lifecycle.change(db, address, action, actor=operator_actor())
            finally:
                await db.close()
            return f"{account.address}: {account.status}"

        try:
            click.echo(run_command(run()))
        except AccountRefused as exc:
            fail(str(exc), EXIT_USAGE)

    command.help = summary
    return command


for _action, _summary in (
    ("suspend", "Suspend the active mailbox ADDRESS (logins and incoming mail refused)."),
    ("reactivate", "Reactivate the suspended mailbox ADDRESS."),
    ("close", "Close ADDRESS for good: nobody reads it again; its proofs stay."),
):
    accounts_command.command.add_command(_life_cycle_command(_action, _summary))
