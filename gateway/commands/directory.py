"""``mssante directory``: import the national extract, search and show entries, hide a local
mailbox from directory users (liste rouge) or show it again.

In embedded mode the command uses the running managed slapd (``mssante serve``) through its
ldapi socket, or starts it for the duration of the command when the gateway is not running.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from accounts.audit import operator_actor
from accounts.errors import AccountRefused
from accounts.publishing import set_liste_rouge
from directory_ldap import DirectoryEntry, DirectoryError
from directory_ldap.extract import ExtractError, ExtractReader
from directory_ldap.importer import ImportSummary, import_extract
from directory_ldap.service import Directory
from gateway.context import EXIT_FAILURE, EXIT_USAGE, CliContext, fail, pass_cli
from gateway.startup import open_storage
from storage.accounts import Account

T = TypeVar("T")


def _running(directory: Directory) -> bool:
    if directory.layout is None:
        return True
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(directory.layout.socket_path))
    except OSError:
        return False
    return True


def _with_directory(cli: CliContext, work: Callable[[Directory], Awaitable[T]]) -> T:
    settings = cli.settings()

    async def run() -> T:
        directory = Directory(settings)
        manage = not _running(directory)
        await directory.start(manage=manage)
        try:
            return await work(directory)
        finally:
            # stops slapd only if this command started it (here or during an import)
            await directory.stop()

    try:
        return asyncio.run(run())
    except DirectoryError as exc:
        fail(str(exc), EXIT_FAILURE)
        raise AssertionError("unreachable") from exc


@click.group("directory")
def command() -> None:
    """The LDAP directory: national extract import and correspondent search."""


@command.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@pass_cli
def import_cmd(cli: CliContext, file: Path) -> None:
    """Import FILE, the "Extraction Correspondance MSSanté" (|-separated, UTF-8)."""
    if not file.is_file():
        fail(f"extract file {file} does not exist", EXIT_USAGE)
    console = Console(stderr=True)
    try:
        extract = ExtractReader(file)  # the header only: rows are streamed by the import
    except ExtractError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    console.print(f"columns used: {', '.join(extract.used_columns)}")
    if extract.ignored_columns:
        console.print(f"columns ignored: {', '.join(extract.ignored_columns)}")
    if extract.missing_columns:
        console.print(f"columns missing: {', '.join(extract.missing_columns)}")

    async def work(directory: Directory) -> ImportSummary:
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task("importing", total=None)
            return await import_extract(
                directory, file,
                progress=lambda done, total: bar.update(task, completed=done,
                                                        total=total or None),
            )

    try:
        summary = _with_directory(cli, work)
    except ExtractError as exc:  # the file became unreadable part-way
        fail(str(exc), EXIT_USAGE)
        return
    for bad in summary.bad:
        click.echo(f"line {bad.line}: skipped: {bad.reason}")
    if summary.deleted:
        more = summary.deleted - len(summary.deleted_addresses)
        click.echo(f"deleted ({summary.deleted}): {', '.join(summary.deleted_addresses)}"
                   + (f" and {more} more" if more else ""))
    for dn, reason in summary.failed:
        click.echo(f"failed: {dn}: {reason}")
    for line in summary.internationalised_lines():
        click.echo(line)
    click.echo(
        f"imported {summary.rows} rows from {file}: {summary.added} added, {summary.updated} "
        f"updated, {summary.deleted} deleted, {summary.unchanged} unchanged, "
        f"{len(summary.bad)} bad rows skipped, {len(summary.failed)} failed"
        f"{' (after an interrupted import)' if summary.resumed else ''} "
        f"in {summary.seconds:.1f}s"
    )
    if summary.failed:
        raise SystemExit(EXIT_FAILURE)


@command.command("search")
@click.argument("text")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@pass_cli
def search_cmd(cli: CliContext, text: str, limit: int) -> None:
    """Search correspondents: every word of TEXT must match (name, specialty, place...)."""
    if not text.split():
        fail("search text is empty; give at least one word, e.g. \"martin cardio 31\"", EXIT_USAGE)
    # One more than shown, to say so when the list is cut rather than stop silently.
    entries = _with_directory(cli, lambda d: d.search(text, limit + 1))
    cut = len(entries) > limit
    entries = entries[:limit]
    table = Table(title=f"{len(entries)} result(s) for {text!r}")
    for col in ("address", "name", "type", "specialty", "structure", "place", "origin"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.address, e.common_name, e.type, e.specialty_label, e.structure_name,
                      " ".join(p for p in (e.postal_code, e.city) if p), e.origin)
    Console(width=200).print(table)
    if cut:
        click.echo(f"more than {limit} entries match {text!r}: only the first {limit} are "
                   "shown; add words or raise --limit")


@command.command("show")
@click.argument("address")
@pass_cli
def show_cmd(cli: CliContext, address: str) -> None:
    """Show the directory entry of ADDRESS."""
    entry: DirectoryEntry | None = _with_directory(cli, lambda d: d.lookup(address))
    if entry is None:
        fail(f"{address} is not in the directory", EXIT_FAILURE)
        return
    for name, value in vars(entry).items():
        if name != "password_hashes" and value not in ("", 0, False, ()):
            click.echo(f"{name}: {value}")


def _set_liste_rouge(cli: CliContext, address: str, hidden: bool) -> Account | None:
    settings = cli.settings()

    async def work(directory: Directory) -> Account:
        db = await open_storage(settings)
        try:
            return await set_liste_rouge(db, directory, address, hidden,
                                         actor=operator_actor())
        finally:
            await db.close()

    try:
        return _with_directory(cli, work)
    except AccountRefused as exc:
        fail(str(exc), EXIT_USAGE)
        return None


@command.command("hide")
@click.argument("address")
@pass_cli
def hide_cmd(cli: CliContext, address: str) -> None:
    """Put the local mailbox ADDRESS on the liste rouge: directory users no longer find it."""
    account = _set_liste_rouge(cli, address, True)
    if account is not None:
        click.echo(f"{account.address} is hidden from directory users (liste rouge)")


@command.command("unhide")
@click.argument("address")
@pass_cli
def unhide_cmd(cli: CliContext, address: str) -> None:
    """Take the local mailbox ADDRESS off the liste rouge: directory users find it again."""
    account = _set_liste_rouge(cli, address, False)
    if account is not None:
        click.echo(f"{account.address} is shown to directory users again")
