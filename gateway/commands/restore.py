"""``mssante restore SRC``: a backup back into an empty data directory, before first start.

Every file is checked against the manifest, the data directory and the configured database
are checked empty, all before anything is written: a corrupted backup or a busy target is
refused as a whole, naming the file, directory or database. Then the configuration and
files, the database (SQLite file, or ``pg_restore`` into the configured empty database) and
the directory's LDIF (``slapadd`` into the managed slapd's databases) are put back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from config import ConfigError, load_settings
from directory_ldap.dump import DumpError
from gateway.backup_set import (
    BackupRefused,
    backup_config,
    check_database_target,
    check_empty_target,
    read_manifest,
    restore_database,
    restore_directory,
    restore_files,
    verify_backup,
)
from gateway.context import EXIT_FAILURE, EXIT_USAGE, CliContext, fail, pass_cli
from storage.backup import BackupError


@click.command("restore")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="Master key file to copy into the restored data directory.")
@pass_cli
def command(cli: CliContext, src: Path, key_file: Path | None) -> None:
    """Restore backup SRC into the (empty) data directory."""
    target = cli.settings()
    try:
        manifest = read_manifest(src)
        verify_backup(src, manifest)
        check_empty_target(target.data_dir)
        # The configuration in force afterwards: an existing one given with --config, else
        # the backup's (environment variables apply on top, as for every command).
        config = target.config_file if target.config_file.exists() else \
            backup_config(src, manifest)
        try:
            planned = load_settings(config, target.data_dir)
        except ConfigError as exc:
            fail(f"the configuration to restore with is not valid: {exc}", EXIT_USAGE)
        check_database_target(manifest, planned)
    except BackupRefused as exc:
        fail(str(exc), EXIT_USAGE)
    except BackupError as exc:
        fail(f"cannot check the target database: {exc}", EXIT_FAILURE)
    try:
        report = restore_files(src, manifest, target.data_dir, target.config_file)
        settings = load_settings(cli.config_file, target.data_dir)
        restore_database(src, manifest, settings)
        report.ldif_loaded = restore_directory(src, settings)
        if key_file is not None and not settings.key_file.exists():
            shutil.copyfile(key_file, settings.key_file)
            settings.key_file.chmod(0o600)
    except (BackupError, DumpError, ConfigError, OSError) as exc:
        fail(f"restore failed: {exc}", EXIT_FAILURE)
    counts = ", ".join(f"{v} {k}" for k, v in manifest["counts"].items())
    click.echo(f"restored {src} (taken {manifest['created_at']}) into {settings.data_dir}: "
               f"{report.files} files, database {manifest['database']} ({counts}), "
               f"{report.ldif_loaded} directory databases")
    for warning in report.warnings:
        click.echo(f"mssante: warning: {warning}", err=True)
    if not settings.key_file.exists():
        click.echo(
            f"mssante: warning: no master key at {settings.key_file}: copy the key file "
            "backed up separately there before starting the gateway (without it no stored "
            "message can be read)", err=True)
