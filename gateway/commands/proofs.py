"""``mssante proofs``: verify the ledger, show the proofs of a message, sign a checkpoint."""

from __future__ import annotations

import json

import click

from accounts.audit import ACCOUNT_REF_PREFIX
from gateway.context import CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from mail.timeline import story_json, story_text
from storage import proofs


@click.group("proofs")
def command() -> None:
    """The proof ledger: append-only, hash-chained, with signed checkpoints."""


@command.command("verify")
@pass_cli
def verify(cli: CliContext) -> None:
    """Check every record and checkpoint; exit 1 naming each change, deletion or reordering."""
    settings = cli.settings()

    async def run() -> proofs.VerifyReport:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                return await proofs.verify(conn, db.keyring)
        finally:
            await db.close()

    report = run_command(run())
    click.echo(
        f"{report.records} records, {report.checkpoints} signed checkpoints, "
        f"last seq {report.last_seq}"
    )
    if not report.ok:
        for problem in report.problems:
            click.echo(f"  problem: {problem}", err=True)
        fail(f"proof ledger verification failed: {len(report.problems)} problem(s)")
    click.echo("ledger intact")


@command.command("show")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@pass_cli
def show(cli: CliContext, message_id: str, as_json: bool) -> None:
    """The story of one message, by its Message-ID (with or without <>), or of one
    account, as account:ADDRESS: every proof in ledger order, one sentence each."""
    settings = cli.settings()
    ref = message_id if message_id.startswith(("<", ACCOUNT_REF_PREFIX)) else f"<{message_id}>"

    async def run() -> list[proofs.ProofRecord]:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                return await proofs.get_by_message(conn, ref)
        finally:
            await db.close()

    records = run_command(run())
    if not records:
        fail(f"no proof names message {ref!r}", 2)
    if as_json:
        click.echo(json.dumps(story_json(ref, records), ensure_ascii=False, indent=2,
                              sort_keys=True))
        return
    for line in story_text(ref, records):
        click.echo(line)


@command.command("checkpoint")
@pass_cli
def checkpoint(cli: CliContext) -> None:
    """Sign the newest record now (the gateway also does it periodically)."""
    settings = cli.settings()

    async def run() -> int | None:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:
                return await proofs.checkpoint(conn, db.keyring)
        finally:
            await db.close()

    seq = run_command(run())
    click.echo("nothing new to sign" if seq is None else f"checkpoint signed at seq {seq}")
