"""``mssante retention run``: purge bodies whose retention period has ended, now."""

from __future__ import annotations

import click

from gateway.context import CliContext, pass_cli, run_command
from gateway.startup import open_storage
from mail.retention import PurgeReport, purge_expired


@click.group("retention")
def command() -> None:
    """Bodies are kept [storage] body_retention_days (92), proofs forever."""


@command.command("run")
@pass_cli
def run(cli: CliContext) -> None:
    """Purge expired bodies now (a running gateway also does it every hour)."""
    settings = cli.settings()

    async def go() -> PurgeReport:
        db = await open_storage(settings)
        try:
            return await purge_expired(db)
        finally:
            await db.close()

    report = run_command(go())
    click.echo(
        f"purged {report.purged} message bodies ({report.mailbox_rows} mailbox entries); "
        f"{report.kept_for_queue} kept while still queued for delivery"
    )
