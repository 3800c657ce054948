"""``mssante serve`` and ``mssante init``: run the gateway, or only prepare its data dir."""

from __future__ import annotations

import asyncio
import sys

import click

from gateway.context import CliContext, pass_cli, run_command
from gateway.firststart import announce
from gateway.logs import configure_logging
from gateway.private_files import make_private
from gateway.runtime import Gateway, serve
from gateway.startup import ensure_config_file, open_storage, prepare_tls


def banner(gateway: Gateway) -> None:
    """What a person needs to connect: where each service listens, first-start credentials."""
    s = gateway.settings
    out = [
        f"mssante-gateway ready - mode {s.gateway.mode}, domains {', '.join(s.gateway.domains)}",
        f"  data directory  {s.data_dir}",
        f"  configuration   {s.config_file}",
    ]
    for lst in gateway.listeners():
        out.append(f"  {lst.label:<34} {lst.host}:{lst.port}  ({lst.security})")
    if gateway.trust is not None:
        out.append(f"  trust space     {gateway.trust.current.count} domains")
    creds = gateway.first_start
    if creds is not None:
        out += announce(creds, s.data_dir, terminal=sys.stdout.isatty())
        if s.web.enabled:
            out.append(
                f"  portal          sign-up and review: to let the administrator in, run "
                f"mssante accounts portal-password {creds.admin_address} --usual-email "
                "<your address>; e-mails (links, codes) are written to "
                f"{s.data_dir / 'outbox'}"
            )
    out.append("Press Ctrl-C to stop.")
    print("\n".join(out), flush=True)


@click.command("serve")
@pass_cli
def command(cli: CliContext) -> None:
    """Run every service in the foreground until SIGTERM or Ctrl-C."""
    settings = cli.settings()
    configure_logging(settings.gateway.log_format, settings.gateway.log_level)
    sys.exit(run_command(serve(settings, announce=banner)))


@click.command("init")
@pass_cli
def init(cli: CliContext) -> None:
    """Prepare the data directory (configuration, PKI, database, key) without serving."""
    settings = cli.settings()

    async def run() -> None:
        wrote = ensure_config_file(settings)
        prepare_tls(settings)
        db = await open_storage(settings)
        await db.close()
        await asyncio.to_thread(make_private, settings)
        click.echo(
            f"data directory {settings.data_dir} ready"
            + (f"; configuration written to {settings.config_file}" if wrote else "")
        )

    run_command(run())
