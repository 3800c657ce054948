"""``mssante check-config``: validate the configuration without starting anything."""

from __future__ import annotations

import click

from gateway.context import CliContext, pass_cli
from gateway.private_files import exposed_paths, warning_line


@click.command("check-config")
@click.option("--reference", is_flag=True, help="Print the configuration reference (Markdown).")
@pass_cli
def command(cli: CliContext, reference: bool) -> None:
    """Validate the configuration file and environment; exit 2 naming the first bad value."""
    if reference:
        from config.reference import markdown_reference

        click.echo(markdown_reference())
        return
    settings = cli.settings()
    source = settings.config_file if settings.config_file.exists() else "built-in defaults"
    click.echo(
        f"configuration OK: {source} (mode {settings.gateway.mode}, "
        f"domains {', '.join(settings.gateway.domains)}, database {_masked(settings.database_url)})"
    )
    exposed = exposed_paths(settings)
    for path, mode in exposed[:MAX_WARNINGS]:
        click.echo(f"mssante: warning: {warning_line(path, mode)}", err=True)
    if len(exposed) > MAX_WARNINGS:
        click.echo(f"mssante: warning: {len(exposed) - MAX_WARNINGS} more paths under "
                   f"{settings.data_dir} are readable or writable by other accounts", err=True)


MAX_WARNINGS = 20
"""Paths named one by one; beyond, one line counts the others."""


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
