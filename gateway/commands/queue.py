"""``mssante queue``: see and act on the outbound queue (list, show, retry, delete).

The commands work on the database directly, so they also act on a queue a running gateway
is serving: ``retry`` makes rows due and the worker (which polls at least every second)
takes them; ``delete`` removes a row, records a ``bounced`` proof saying an administrator
did it, and tells the sender with a failure DSN unless ``--no-dsn``.
"""

from __future__ import annotations

import click

from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from mail.changes import ChangeHub
from mail.dsn import RecipientReport
from mail.dsn_sender import DsnSender
from mail.pipeline import Pipeline
from smtp.outbound_rows import list_rows, make_due, message_of, remove
from storage import proofs
from storage import queue as queue_rows
from storage.errors import NotFound
from storage.types import utcnow

DELETED_REASON = "deleted by administrator"


@click.group("queue")
def command() -> None:
    """The outbound queue: messages waiting for another operator."""


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else "-"


def _one_line(text: str | None) -> str:
    """The reply on one line, whole: the reason a peer gave is what the operator needs."""
    return " ".join((text or "-").split())


@command.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also rows already sent or bounced.")
@pass_cli
def list_(cli: CliContext, show_all: bool) -> None:
    """One line per row: id, state, sender, recipient, attempts, next attempt, last reply."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                rows = await list_rows(
                    conn, states=None if show_all else ("queued", "inflight", "deferred")
                )
        finally:
            await db.close()
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "state", "sender", "recipient", "attempts", "next attempt",
                      "last reply")
        for r in rows:
            table.add_row(str(r.id), r.state, r.sender or "<>", r.recipient, str(r.attempts),
                          _when(r.next_attempt_at), _one_line(r.last_reply))
        # wide enough that no cell wraps: a long reply stays on one line, whole and greppable
        Console(width=100_000, soft_wrap=True).print(table)
        click.echo(f"{len(rows)} row(s)")

    run_command(run())


def _parse_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        fail(f"queue id {value!r} is not a number", EXIT_USAGE)
    return int(value)


@command.command("show")
@click.argument("item_id")
@pass_cli
def show(cli: CliContext, item_id: str) -> None:
    """Details of one row and every proof about its message."""
    settings = cli.settings()
    wanted = _parse_id(item_id)

    async def run() -> None:
        db = await open_storage(settings)
        try:
            async with db.read() as conn:
                item = await queue_rows.get(conn, wanted)
                message = await message_of(conn, item.message_id)
                records = (await proofs.get_by_message(conn, message.message_id_header)
                           if message.message_id_header else [])
        finally:
            await db.close()
        fields = [
            ("id", item.id), ("state", item.state), ("sender", item.sender or "<>"),
            ("recipient", item.recipient), ("orcpt", item.orcpt), ("notify", item.notify),
            ("ret", item.ret), ("envid", item.envid), ("attempts", item.attempts),
            ("created", _when(item.created_at)), ("next attempt", _when(item.next_attempt_at)),
            ("expires", _when(item.expires_at)), ("delay notified", item.delay_notified),
            ("claimed by", item.claimed_by), ("last reply", item.last_reply),
            ("message-id", message.message_id_header), ("size", message.size),
            ("sha256", message.content_sha256),
        ]
        for name, value in fields:
            click.echo(f"{name}: {'-' if value is None else value}")
        click.echo(f"proofs: {len(records)}")
        for rec in records:
            detail = rec.details.get("reply") or rec.details.get("mailbox") or ""
            click.echo(f"  #{rec.seq} {_when(rec.created_at)} {rec.kind} {rec.actor or '-'} "
                       f"{_one_line(str(detail))}")

    try:
        run_command(run())
    except NotFound:
        fail(f"queue row {wanted} does not exist", EXIT_USAGE)


@command.command("retry")
@click.argument("item_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Every waiting row.")
@click.option("--force", is_flag=True,
              help="Also take back rows in flight whose node still holds a lease (only when "
                   "that node is known to be gone: otherwise the message may go twice).")
@pass_cli
def retry(cli: CliContext, item_id: str | None, retry_all: bool, force: bool) -> None:
    """Make a waiting row (or all of them) due now; a row in flight on a node that died
    (its lease lapsed) is taken back too."""
    if (item_id is None) == (not retry_all):
        fail("give a queue id or --all (not both)", EXIT_USAGE)
    settings = cli.settings()
    wanted = None if retry_all else _parse_id(item_id or "")

    async def run() -> int:
        db = await open_storage(settings)
        try:
            async with db.begin() as conn:
                if wanted is not None:
                    await queue_rows.get(conn, wanted)  # NotFound names it
                return await make_due(conn, wanted, force=force)
        finally:
            await db.close()

    try:
        count = run_command(run())
    except NotFound:
        fail(f"queue row {wanted} does not exist", EXIT_USAGE)
    if wanted is not None and count == 0:
        fail(f"queue row {wanted} is not waiting: already sent or bounced, or in flight on a "
             "node whose lease still runs ([smtp] outbound_lease; --force takes it back)",
             EXIT_USAGE)
    click.echo(f"{count} row(s) due now")


@command.command("delete")
@click.argument("item_id")
@click.option("--no-dsn", is_flag=True, help="Do not tell the sender.")
@pass_cli
def delete(cli: CliContext, item_id: str, no_dsn: bool) -> None:
    """Remove a row; records a bounced proof and sends a failure DSN unless --no-dsn."""
    settings = cli.settings()
    wanted = _parse_id(item_id)

    async def run() -> bool:
        db = await open_storage(settings)
        pipeline = Pipeline(db, settings, ChangeHub())
        try:
            async with db.begin() as conn:
                item = await queue_rows.get(conn, wanted)
                message = await message_of(conn, item.message_id)
                await remove(conn, wanted)
                await proofs.append(
                    conn, kind="bounced", message_ref=message.message_id_header,
                    content_sha256=message.content_sha256, actor=item.recipient,
                    details={"recipient": item.recipient, "queue_id": item.id,
                             "reply": DELETED_REASON, "status": "5.0.0"},
                )
            if no_dsn:
                return False
            async with db.read() as conn:
                raw = (await db.blobs.read(conn, message.blob_id)
                       if message.blob_id is not None else b"")
            await pipeline.start()
            report = RecipientReport(
                final_recipient=item.recipient, action="failed", status="5.0.0",
                original_recipient=item.orcpt, diagnostic=f"550 5.0.0 {DELETED_REASON}",
                last_attempt=utcnow(),
            )
            sent = await DsnSender(db, settings, pipeline).send(
                sender=item.sender, reports=[report], notify=[item.notify], original=raw,
                message_ref=message.message_id_header, content_sha256=message.content_sha256,
                ret=item.ret, envid=item.envid, arrival=message.received_at,
            )
            return sent is not None
        finally:
            await pipeline.stop()
            await db.close()

    try:
        dsn = run_command(run())
    except NotFound:
        fail(f"queue row {wanted} does not exist", EXIT_USAGE)
    click.echo(f"queue row {wanted} deleted" + ("; sender notified" if dsn else ""))
