"""``mssante delegations``: members of organisational mailboxes and delegates.

A delegate sees the owner's folders under ``Shared/<owner>/`` over IMAP with the granted
RFC 4314 rights, and with ``--send-as`` may send as the owner through submission.
"""

from __future__ import annotations

import click

from accounts import delegations
from accounts.errors import AccountRefused
from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage


@click.group("delegations")
def command() -> None:
    """Grant, revoke and list rights on mailboxes held by other accounts."""


@command.command("grant")
@click.argument("owner")
@click.argument("delegate")
@click.option("--rights", default=delegations.READ_ONLY, show_default=True,
              help="RFC 4314 letters: l lookup, r read, s seen, w write flags, i insert, "
                   "k create, x delete mailbox, t delete messages, e expunge, a administer.")
@click.option("--send-as", is_flag=True, help="Let the delegate send as the owner.")
@pass_cli
def grant(cli: CliContext, owner: str, delegate: str, rights: str, send_as: bool) -> None:
    """Give DELEGATE RIGHTS on OWNER's mailbox (replaces earlier rights)."""
    settings = cli.settings()
    try:
        delegations.parse_rights(rights)
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)

    async def run() -> None:
        db = await open_storage(settings)
        try:
            d = await delegations.grant(db, owner, delegate, rights, can_send_as=send_as)
        finally:
            await db.close()
        click.echo(f"{d.delegate} holds {d.rights} on {d.owner}"
                   + (" and may send as it" if d.can_send_as else ""))

    try:
        run_command(run())
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@command.command("revoke")
@click.argument("owner")
@click.argument("delegate")
@pass_cli
def revoke(cli: CliContext, owner: str, delegate: str) -> None:
    """Take every right of DELEGATE on OWNER's mailbox away."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            await delegations.revoke(db, owner, delegate)
        finally:
            await db.close()
        click.echo(f"{delegate.lower()} no longer holds rights on {owner.lower()}")

    try:
        run_command(run())
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)


@command.command("list")
@click.argument("address")
@pass_cli
def list_(cli: CliContext, address: str) -> None:
    """List what ADDRESS delegates and what it was delegated (tab-separated)."""
    settings = cli.settings()

    async def run() -> delegations.DelegationList:
        db = await open_storage(settings)
        try:
            return await delegations.list_for(db, address)
        finally:
            await db.close()

    try:
        found = run_command(run())
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)
        return
    for d in found.given + found.received:
        click.echo(f"{d.owner}\t{d.delegate}\t{d.rights}\t{'send-as' if d.can_send_as else '-'}")
