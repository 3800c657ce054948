"""``mssante reload``: SIGHUP to the running gateway, then what it changed.

The gateway is found through its pid file; its answer is the reload record it writes once
the reload is done (gateway/reload.py), so the command reports what the gateway did, not
what the files say.
"""

from __future__ import annotations

import os
import signal
import time

import click

from gateway.context import EXIT_FAILURE, CliContext, fail, pass_cli
from gateway.pidfile import NoRunningGateway, running_gateway_pid
from gateway.reload import read_status

WAIT_SECONDS = 30.0


@click.command("reload")
@pass_cli
def command(cli: CliContext) -> None:
    """Make the running gateway re-read its trust space and [transport]."""
    settings = cli.settings()
    try:
        pid = running_gateway_pid(settings.data_dir)
    except NoRunningGateway as exc:
        fail(str(exc), EXIT_FAILURE)
    previous = read_status(settings.data_dir)
    done_before = previous["count"] if previous and previous.get("pid") == pid else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status = read_status(settings.data_dir)
        if status and status.get("pid") == pid and status.get("count", 0) > done_before:
            break
        if time.monotonic() > deadline:
            fail(f"the gateway (pid {pid}) was signalled but did not report a reload within "
                 f"{WAIT_SECONDS:g} s; see its log", EXIT_FAILURE)
        time.sleep(0.1)
    click.echo(f"gateway (pid {pid}) reloaded")
    for line in status["changes"]:
        click.echo(f"  {line}")
    if not status["changes"] and not status["errors"]:
        click.echo("  nothing changed")
    if status["errors"]:
        for line in status["errors"]:
            click.echo(f"mssante: error: {line}", err=True)
        raise SystemExit(EXIT_FAILURE)
