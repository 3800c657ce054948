"""``mssante backup DEST``: a consistent copy of a running gateway, for ``mssante restore``.

The database is copied online (SQLite backup API or ``pg_dump``), then the configuration,
PKI and trust-space files and the directory's LDIF, and last the manifest with every file's
SHA-256. The master key file is left out unless ``--with-key``, because whoever holds both
the backup and the key can read every stored message.
"""

from __future__ import annotations

from pathlib import Path

import click

from directory_ldap.dump import DumpError
from gateway.backup_set import BackupRefused, create_backup
from gateway.context import EXIT_FAILURE, EXIT_USAGE, CliContext, fail, pass_cli
from storage.backup import BackupError


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--with-key", is_flag=True,
              help="Also copy the master key file (anyone with the backup can then read "
                   "every stored message).")
@pass_cli
def command(cli: CliContext, dest: Path, with_key: bool) -> None:
    """Copy the database, PKI, configuration, trust space and directory into DEST."""
    settings = cli.settings()
    if with_key:
        click.echo(
            "mssante: WARNING: --with-key: the master key file is copied into the backup; "
            "anyone holding this backup can decrypt every stored message. Keep it encrypted "
            "and offline.", err=True)
    try:
        report = create_backup(settings, dest, with_key=with_key)
    except BackupRefused as exc:
        fail(str(exc), EXIT_USAGE)
    except (BackupError, DumpError, OSError) as exc:
        fail(f"backup failed: {exc}", EXIT_FAILURE)
    manifest = report.manifest
    counts = ", ".join(f"{v} {k}" for k, v in manifest["counts"].items())
    click.echo(f"backup written to {report.dest}: {len(manifest['files'])} files, "
               f"{report.size} octets in {report.seconds:.1f} s")
    click.echo(f"  database {manifest['database']} at schema {manifest['schema_revision']}: "
               f"{counts}")
    for warning in report.warnings:
        click.echo(f"mssante: warning: {warning}", err=True)
