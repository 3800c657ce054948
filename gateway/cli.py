"""The ``mssante`` command line: global options, then one sub-command per module."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import click

import gateway.commands as commands
from gateway.context import CliContext
from gateway.private_files import restrict_umask


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), default=None,
    help="Configuration file (default: <data dir>/mssante.toml, or $MSSANTE_CONFIG).",
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="Data directory (default: $MSSANTE_HOME or ./var).",
)
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, data_dir: Path | None) -> None:
    """mssante-gateway: MSSanté secure health mail operator."""
    restrict_umask()
    ctx.obj = CliContext(config_file=config_file, data_dir=data_dir)


for _info in pkgutil.iter_modules(commands.__path__):
    _module = importlib.import_module(f"gateway.commands.{_info.name}")
    _cmd = getattr(_module, "command", None)
    if isinstance(_cmd, click.Command):
        main.add_command(_cmd)
