"""``mssante check-config``: validate the configuration without starting anything."""

from __future__ import annotations

import click

from gateway.context import CliContext, pass_cli


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


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
