"""``mssante indicators --month YYYY-MM [--out FILE.csv]``: the month's activity figures.

What an operator reports to the trust-space manager (see :mod:`mail.indicators`): active
mailboxes by type, messages sent and received, messages by X-MSS-CODECDA code, connections
by protocol and authentication method, DSN and MDN counts, median delivery time. CSV on
standard output, or written to FILE (mode 0600). A month that is not YYYY-MM exits 2.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli, run_command
from gateway.startup import open_storage
from mail.indicators import Row, compute, month_range, to_csv


def _last_month() -> str:
    first = datetime.now(UTC).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@click.command("indicators")
@click.option("--month", default=None, help="UTC month YYYY-MM (default: the last one)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="write the CSV to this file instead of standard output")
@pass_cli
def command(cli: CliContext, month: str | None, out: Path | None) -> None:
    """Monthly indicators for the trust-space manager, as CSV."""
    wanted = month or _last_month()
    try:
        month_range(wanted)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    settings = cli.settings()

    async def go() -> list[Row]:
        db = await open_storage(settings)
        try:
            return await compute(db, wanted)
        finally:
            await db.close()

    text = to_csv(wanted, run_command(go()))
    if out is None:
        click.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"indicators of {wanted} written to {out}")
