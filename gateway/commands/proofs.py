"""``mssante proofs``: verify the ledger, show the proofs of a message, sign a checkpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from accounts.audit import ACCOUNT_REF_PREFIX
from gateway.context import CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from mail.timeline import story_json, story_text
from storage import proof_bundle, proofs, receipts


@click.group("proofs")
def command() -> None:
    """The proof ledger: append-only, hash-chained, with signed checkpoints."""


@command.command("verify")
@click.option(
    "--offline", "offline", type=click.Path(path_type=Path, file_okay=False),
    help="verify an export made by 'mssante proofs export' instead, without the database",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="processes reading and hashing the records (default: one per CPU from 200,000 "
         "records; 1 on a machine busy with other work)",
)
@pass_cli
def verify(cli: CliContext, offline: Path | None, workers: int | None) -> None:
    """Check every record and checkpoint; exit 1 naming each change, deletion or reordering."""
    if offline is not None:
        verify_offline(offline)
        return
    settings = cli.settings()

    async def run() -> proofs.VerifyReport:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                return await proofs.verify(conn, db.keyring, directory=settings.checkpoint_dir,
                                           workers=workers)
        finally:
            await db.close()

    report = run_command(run())
    click.echo(
        f"{report.records} records, {report.checkpoints} signed checkpoints, "
        f"{report.checkpoint_files} checkpoint files in {settings.checkpoint_dir}, "
        f"last seq {report.last_seq}, root {proofs.base64_text(report.root)}"
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
                return await proofs.checkpoint(
                    conn, db.keyring, origin=settings.proof_origin,
                    directory=settings.checkpoint_dir,
                )
        finally:
            await db.close()

    seq = run_command(run())
    click.echo("nothing new to sign" if seq is None else f"checkpoint signed at seq {seq}")


def verify_offline(directory: Path) -> None:
    """``proofs verify --offline DIR``: the export alone, no settings, no database."""
    if not (directory / "export.json").is_file():
        fail(f"{directory} is not a proof export (no export.json in it)", 2)
    report = proof_bundle.verify_export(directory)
    click.echo(
        f"{report.records} records, {report.checkpoints} signed checkpoints, "
        f"tree size {report.tree_size}"
    )
    if not report.ok:
        for problem in report.problems:
            click.echo(f"  problem: {problem}", err=True)
        fail(f"proof export verification failed: {len(report.problems)} problem(s)")
    click.echo("export verified: every record is in the signed ledger")


def _when(value: str | None, option: str, *, end: bool) -> datetime | None:
    """A date (whole day, ``--to`` inclusive) or an ISO 8601 time; UTC when no offset."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (2026-11-30) or an ISO 8601 time", param_hint=option
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(value) == 10:  # a date: up to the end of that day
        when += timedelta(days=1)
    return when


@command.command("export")
@click.option("--from", "since", metavar="DATE", help="first day (or time) to export")
@click.option("--to", "until", metavar="DATE", help="last day (inclusive) or time (exclusive)")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="directory to write (created; must be empty)")
@pass_cli
def export(cli: CliContext, since: str | None, until: str | None, out: Path) -> None:
    """Records with inclusion proofs, signed checkpoints and public keys, for an auditor."""
    start, end = _when(since, "--from", end=False), _when(until, "--to", end=True)
    if start and end and start >= end:
        raise click.BadParameter(f"{until!r} is before {since!r}", param_hint="--to")
    if out.exists() and any(out.iterdir()):
        fail(f"--out {out} is not empty; give a new directory", 2)
    settings = cli.settings()

    async def run() -> proof_bundle.ExportReport:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:  # sign first: every exported record is covered
                await proofs.checkpoint(conn, db.keyring, origin=settings.proof_origin,
                                        directory=settings.checkpoint_dir)
            async with db.read() as conn:
                return await proof_bundle.export(
                    conn, db.keyring, out, origin=settings.proof_origin, since=start, until=end
                )
        finally:
            await db.close()

    report = run_command(run())
    click.echo(
        f"exported {report.records} records with inclusion proofs against tree size "
        f"{report.tree_size}, {report.checkpoints} signed checkpoints, to {out}"
    )


@command.command("receipt")
@click.argument("message_id")
@click.option("--recipient", metavar="ADDR", help="only this recipient's delivery and reading")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="FILE.json (verifiable), FILE.html or FILE.pdf (printable, JSON inside)")
@pass_cli
def receipt(cli: CliContext, message_id: str, recipient: str | None, out: Path) -> None:
    """An acknowledgement of receipt for one message, verifiable offline."""
    if out.suffix.lower() not in (".json", ".html", ".pdf"):
        raise click.BadParameter(f"{str(out)!r} must end in .json, .html or .pdf",
                                 param_hint="--out")
    settings = cli.settings()
    ref = message_id if message_id.startswith("<") else f"<{message_id}>"

    async def run() -> dict[str, object] | str:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:  # sign first: the receipt covers every record
                await proofs.checkpoint(conn, db.keyring, origin=settings.proof_origin,
                                        directory=settings.checkpoint_dir)
            async with db.read() as conn:
                return await receipts.build_receipt(conn, db.keyring, ref, recipient=recipient)
        except receipts.NoProofs as exc:
            return str(exc)
        finally:
            await db.close()

    doc = run_command(run())
    if isinstance(doc, str):
        fail(doc, 2)
        return
    receipts.write(doc, out)
    summary = doc["summary"]
    assert isinstance(summary, dict)
    click.echo(f"receipt for {ref}: {len(summary['events'])} records, written to {out}")


@command.command("verify-receipt")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--key", "keys", multiple=True, metavar="VKEY",
              help="the operator's published verifier key (else the receipt's own is used)")
def verify_receipt(file: Path, keys: tuple[str, ...]) -> None:
    """Check a JSON receipt offline: signature, inclusion proofs, summary."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"{file} is not a readable JSON receipt: {exc}", 2)
        return
    if not isinstance(doc, dict):
        fail(f"{file} is not a JSON receipt", 2)
        return
    report = receipts.verify_receipt(doc, list(keys) or None)
    if not report.ok:
        for problem in report.problems:
            click.echo(f"  problem: {problem}", err=True)
        fail(f"receipt verification failed: {len(report.problems)} problem(s)")
    s = doc["summary"]
    click.echo(f"receipt verified: {report.records} records of {s['message_id']} are in the "
               "signed ledger")
    for line in ("sender", "submitted_at", "delivered_at", "read_at", "content_sha256"):
        click.echo(f"  {line}: {s.get(line) or '-'}")
    if not report.key_pinned:
        click.echo("  note: checked with the key inside the receipt; compare it with the "
                   "operator's published key (--key)")
