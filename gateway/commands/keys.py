"""``mssante keys``: the master keys that protect stored bodies, and their rotation.

``rotate`` appends a new master key to the key file (it becomes the active one), then
rewraps every stored body's data key under it (``storage/key_rotation.py``) while the
gateway keeps running: the running gateway reads the new key from the file by itself. The
old keys stay in the file — bodies restored from an older backup still need them — and the
key file must be backed up again after a rotation.
"""

from __future__ import annotations

import asyncio

import click

from gateway.context import CliContext, pass_cli, run_command
from gateway.startup import open_storage
from storage.key_rotation import count_by_key, rewrap_all


@click.group("keys")
def command() -> None:
    """Master keys of the body store: list, rotate, rewrap."""


@command.command("list")
@pass_cli
def list_(cli: CliContext) -> None:
    """Master keys, which one is active, and how many stored bodies each protects."""
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            counts = await count_by_key(db)
            active = db.keyring.active_key_id
            for kid in db.keyring.master_keys:
                mark = " (active)" if kid == active else ""
                click.echo(f"{kid}{mark}: {counts.get(kid, 0)} bodies")
            unknown = set(counts) - set(db.keyring.master_keys)
            for kid in sorted(unknown):
                click.echo(f"{kid} (NOT IN THE KEY FILE): {counts[kid]} bodies unreadable")
        finally:
            await db.close()

    run_command(run())


def _rewrap(cli: CliContext, *, rotate: bool) -> None:
    settings = cli.settings()

    async def run() -> None:
        db = await open_storage(settings)
        try:
            if rotate:
                new = await asyncio.to_thread(db.keyring.rotate)
                click.echo(f"new master key {new} added to {db.keyring.path}; it is now active")
            report = await rewrap_all(db)
            remaining = {k: n for k, n in (report.remaining_by_key or {}).items()
                         if k != db.keyring.active_key_id}
            click.echo(f"{report.rewrapped} bodies rewrapped under {db.keyring.active_key_id}")
            if remaining:
                # bodies stored meanwhile by a gateway that had not yet seen the new key
                click.echo("still under older keys: " + ", ".join(
                    f"{k} ({n})" for k, n in sorted(remaining.items()))
                    + "; run 'mssante keys rewrap' again")
            if rotate:
                click.echo(f"back up the key file {db.keyring.path} again: it holds the new key",
                           err=True)
        finally:
            await db.close()

    run_command(run())


@command.command("rotate")
@pass_cli
def rotate(cli: CliContext) -> None:
    """Add a master key and rewrap every stored body under it, without downtime."""
    _rewrap(cli, rotate=True)


@command.command("rewrap")
@pass_cli
def rewrap(cli: CliContext) -> None:
    """Rewrap the bodies still under an older master key (after an interrupted rotation)."""
    _rewrap(cli, rotate=False)
