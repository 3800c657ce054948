"""``mssante trustspace``: see, check and refresh the MSSanté whitelist in force.

``show`` and ``check`` work offline and only read: they answer from the list in force (the
newest valid one of the local file and the last good copy, as the running gateway does), so
an operator can answer "would we accept mail from X?" even while the publisher is down.
``refresh`` fetches now, keeps what it adopted as the last good copy (which a running gateway
picks up within ``[trustspace] file_check_interval`` seconds) and exits 1 when the new list
was refused (the previous one stays).
"""

from __future__ import annotations

import asyncio

import click

from gateway.context import EXIT_FAILURE, EXIT_USAGE, CliContext, fail, pass_cli
from trustspace.refresh import TrustSpaceManager, ensure_default_whitelist, loaded_at_text
from trustspace.whitelist import InvalidDomain, TrustSpace, WhitelistError, normalise_domain

SHOWN_BY_DEFAULT = 20


def _load_offline(cli: CliContext) -> TrustSpace:
    settings = cli.settings()
    ensure_default_whitelist(settings)
    manager = TrustSpaceManager(settings, read_only=True)
    try:
        asyncio.run(manager.load_initial(offline=True))
    except WhitelistError as exc:
        fail(str(exc), EXIT_FAILURE)
    return manager.current


@click.group("trustspace")
def command() -> None:
    """The MSSanté trust space (whitelist of domains)."""


@command.command("show")
@click.option("--all", "show_all", is_flag=True, help="List every domain, not only the first.")
@pass_cli
def show(cli: CliContext, show_all: bool) -> None:
    """Count, source and load time of the list in force, and its domains."""
    space = _load_offline(cli)
    click.echo(f"domains: {space.count}")
    click.echo(f"source: {space.source}")
    click.echo(f"loaded: {loaded_at_text(space)}")
    click.echo(f"local domains: {', '.join(sorted(space.local_domains))}")
    if space.skipped:
        click.echo(f"skipped (not domain names): {len(space.skipped)}")
    names = sorted(space.domains)
    shown = names if show_all else names[:SHOWN_BY_DEFAULT]
    for name in shown:
        click.echo(f"  {name}")
    if len(shown) < len(names):
        click.echo(f"  … {len(names) - len(shown)} more (use --all)")


@command.command("check")
@click.argument("domain")
@pass_cli
def check(cli: CliContext, domain: str) -> None:
    """Exit 0 if DOMAIN is in the trust space, 1 if not, 2 if it is not a domain name."""
    try:
        name = normalise_domain(domain)
    except InvalidDomain as exc:
        fail(str(exc), EXIT_USAGE)
    space = _load_offline(cli)
    if space.contains(name):
        click.echo(f"{domain} is in the MSSanté trust space ({name})")
        return
    click.echo(f"{domain} is not in the MSSanté trust space ({name})")
    raise SystemExit(EXIT_FAILURE)


@command.command("refresh")
@pass_cli
def refresh(cli: CliContext) -> None:
    """Fetch the whitelist now (URL if configured, else the local file)."""
    settings = cli.settings()
    ensure_default_whitelist(settings)
    manager = TrustSpaceManager(settings)
    result = asyncio.run(manager.refresh())
    if not result.ok:
        fail(f"refresh refused ({result.reason}): {result.detail}; the previous list stays",
             EXIT_FAILURE)
    click.echo(f"refreshed from {result.source}: {result.count} domains")
    interval = settings.trustspace.file_check_interval
    click.echo(f"a running gateway adopts it within {interval:g} s (mssante reload: at once)")
