"""``mssante accounts mdn ADDRESS always|never|ask``: the read-receipt policy of a mailbox.

RFC 8098 §2.1 leaves to the recipient whether a disposition notification is sent.
``always`` sends one automatically on first reading (``automatic-action/MDN-sent-
automatically``); ``never`` and ``ask`` (the default) send nothing automatically — with
``ask`` the user's own client may still ask them and send one itself. The command hangs
under ``mssante accounts`` (added to that group when the command line loads).
"""

from __future__ import annotations

import click

from gateway.commands import accounts as accounts_command
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from storage import accounts as account_rows

POLICIES = ("always", "never", "ask")


@click.command("mdn")
@click.argument("address")
@click.argument("policy")
@pass_cli
def mdn(cli: CliContext, address: str, policy: str) -> None:
    """Set whether ADDRESS sends read receipts automatically (always, never, ask)."""
    settings = cli.settings()
    if policy.lower() not in POLICIES:
        fail(f"MDN policy {policy!r} is not one of {', '.join(POLICIES)}", EXIT_USAGE)
    wanted = policy.lower()

    async def run() -> bool:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:
                account = await account_rows.get_by_address(conn, address.strip().lower())
                if account is None:
                    return False
                await account_rows.update_fields(conn, account.id, mdn_policy=wanted)
                return True
        finally:
            await db.close()

    if not run_command(run()):
        fail(f"address {address!r} has no mailbox here", EXIT_USAGE)
    click.echo(f"{address.strip().lower()}: read receipts {wanted}")


accounts_command.command.add_command(mdn)
