"""Start-up steps shared by ``mssante serve`` and the other commands.

Each step turns what can go wrong at start (database down, key file missing, unreadable
certificate, bad configuration) into a :class:`StartupError` holding one line for a person,
which the command line prints before exiting non-zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from config import Settings, write_template
from storage.database import Database, open_database
from storage.errors import StorageError
from trustspace.certs import PkiError
from trustspace.pki import ServerIdentity, ensure_dev_pki, load_server_identity

T = TypeVar("T")


class StartupError(Exception):
    """The gateway cannot start; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def ensure_config_file(settings: Settings) -> bool:
    """Writes the commented configuration at first start; returns whether it did."""
    return write_template(
        settings.config_file, {"gateway": {"domains": list(settings.gateway.domains)}}
    )


def prepare_tls(settings: Settings) -> ServerIdentity:
    """Embedded: create or reuse the development PKI. Always: load and check the identity."""
    try:
        if settings.embedded:
            ensure_dev_pki(settings)
        return load_server_identity(settings)
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"TLS files: {exc}") from None


async def open_storage(settings: Settings, *, may_create_key: bool = True) -> Database:
    """Opens, checks and migrates the database; a missing key is created only if safe."""
    try:
        return await open_database(settings, may_create_key=may_create_key)
    except StorageError as exc:
        raise StartupError(str(exc)) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on uvloop when installed (docs/architecture.md §8), plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
