"""``mssante retention run``: the retention job now (expiry digests, purge, old traces)."""

from __future__ import annotations

import click

from gateway.context import CliContext, pass_cli, run_command
from gateway.startup import open_storage
from mail.changes import ChangeHub
from mail.expiry_digest import DigestReport, send_expiry_digests
from mail.pipeline import Pipeline
from mail.retention import PurgeReport, purge_expired, purge_traces


@click.group("retention")
def command() -> None:
    """Bodies are kept [storage] body_retention_days (92), proofs forever."""


@command.command("run")
@pass_cli
def run(cli: CliContext) -> None:
    """Tell owners what expires soon, purge expired bodies and old traces now (a running
    gateway also does it every hour)."""
    settings = cli.settings()

    async def go() -> tuple[DigestReport, PurgeReport, int]:
        db = await open_storage(settings)
        pipeline = Pipeline(db, settings, ChangeHub())
        await pipeline.start()
        try:
            digests = await send_expiry_digests(db, pipeline)
            return digests, await purge_expired(db), await purge_traces(db)
        finally:
            await pipeline.stop()
            await db.close()

    digests, report, traces = run_command(go())
    click.echo(f"expiry digests: {digests.digests} sent, listing {digests.messages} messages")
    click.echo(
        f"purged {report.purged} message bodies ({report.mailbox_rows} mailbox entries); "
        f"{report.kept_for_queue} kept while still queued for delivery"
    )
    click.echo(f"purged {traces} traces older than [retention] traces_days")
