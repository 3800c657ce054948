"""``mssante accounts mdn ADDRESS [always|never|ask]`` and
``mssante accounts delivery-notice ADDRESS [always|asked]``: a mailbox's notice settings.

Read notices (RFC 8098 §2.1 leaves to the recipient whether a disposition notification is
sent): ``always`` (the default: the MSSanté service notifies "à l'ouverture") has the
gateway send one automatically at the first reading, and files messages asking for one
with ``$MDNSent`` so that the user's client never asks a second time; ``ask`` leaves it to
the user's client, which may ask them and send one itself; ``never`` sends nothing
automatically. Delivery notices (:mod:`mail.notices`): ``always`` asks a "delivered" DSN
for everything the mailbox sends, ``asked`` (the default) only when the client asks.
Without a value, each command prints the current setting; a change is proved
(``account-changed``, naming the operator). Both hang under
``mssante accounts`` (added to that group when the command line loads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from accounts import audit
from accounts.audit import operator_actor
from gateway.commands import accounts as accounts_command
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from mail.mdn import POLICIES
from mail.notices import DELIVERY_NOTICES, SETTING, delivery_notice
from storage import accounts as account_rows
from storage.accounts import Account


def _apply(cli: CliContext, address: str, setting: str, value: str | None,
           current: Callable[[Account], str],
           fields: Callable[[Account, str], dict[str, Any]]) -> Account:
    """Reads the account; with ``value``, stores ``fields(account, value)`` and, when the
    setting (read by ``current``) really changes, an ``account-changed`` proof naming the
    operator in the same transaction. Returns the account as it is afterwards; exit 2 when
    the address has no mailbox."""
    settings = cli.settings()
    wanted = address.strip().lower()

    async def run() -> Account | None:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:
                account = await account_rows.get_by_address(conn, wanted)
                if account is None:
                    return None
                if value is not None and current(account) != value:
                    await account_rows.update_fields(conn, account.id,
                                                     **fields(account, value))
                    await audit.record_change(conn, account.address, operator_actor(),
                                              setting, current(account), value)
                    account = await account_rows.get_by_address(conn, wanted)
                return account
        finally:
            await db.close()

    found = run_command(run())
    if found is None:
        fail(f"address {address!r} has no mailbox here", EXIT_USAGE)
    assert found is not None
    return found


@click.command("mdn")
@click.argument("address")
@click.argument("policy", required=False)
@pass_cli
def mdn(cli: CliContext, address: str, policy: str | None) -> None:
    """Set whether ADDRESS sends read receipts automatically (always, never, ask)."""
    if policy is not None and policy.lower() not in POLICIES:
        fail(f"MDN policy {policy!r} is not one of {', '.join(POLICIES)}", EXIT_USAGE)
    account = _apply(cli, address, "mdn_policy", policy.lower() if policy else None,
                     lambda a: a.mdn_policy, lambda _a, v: {"mdn_policy": v})
    click.echo(f"{account.address}: read receipts {account.mdn_policy}")


@click.command("delivery-notice")
@click.argument("address")
@click.argument("when", required=False)
@pass_cli
def delivery_notice_command(cli: CliContext, address: str, when: str | None) -> None:
    """Set whether ADDRESS gets a delivery notice for all it sends (always) or only when
    its client asks (asked)."""
    if when is not None and when.lower() not in DELIVERY_NOTICES:
        fail(f"delivery notice {when!r} is not one of {', '.join(DELIVERY_NOTICES)}",
             EXIT_USAGE)
    account = _apply(cli, address, SETTING, when.lower() if when else None,
                     lambda a: delivery_notice(a.settings),
                     lambda a, v: {"settings": {**a.settings, SETTING: v}})
    click.echo(f"{account.address}: delivery notices {delivery_notice(account.settings)}")


accounts_command.command.add_command(mdn)
accounts_command.command.add_command(delivery_notice_command)
