"""What every ``mssante`` sub-command receives: where the settings come from.

Settings are loaded lazily so that ``mssante --help`` works with a broken configuration, and
a bad configuration is reported the same way by every command (one line, exit 2).
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from config import ConfigError, Settings, load_settings

T = TypeVar("T")
EXIT_USAGE = 2
EXIT_FAILURE = 1


@dataclass
class CliContext:
    config_file: Path | None
    data_dir: Path | None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The settings, or exit 2 with the loader's one-line explanation."""
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_file, self.data_dir)
            except ConfigError as exc:
                fail(str(exc), EXIT_USAGE)
        assert self._settings is not None
        return self._settings


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    """Prints one clear line on stderr and exits with ``code`` (2: bad input, 1: failure)."""
    click.echo(f"mssante: error: {message}", err=True)
    raise SystemExit(code)


pass_cli = click.make_pass_decorator(CliContext)


def run_command(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine; start-up failures become one line and a non-zero exit."""
    from gateway.startup import StartupError, run_async

    try:
        return run_async(coro)
    except StartupError as exc:
        fail(str(exc), exc.exit_code)
        raise  # unreachable: fail exits

