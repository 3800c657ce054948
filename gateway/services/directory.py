"""The directory service: managed slapd (or an external server) and account publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from accounts.publishing import sync_directory
from directory_ldap import Directory, DirectoryUnavailable
from directory_ldap.slapd_config import write_crls
from gateway.service import Listener

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ORDER = 10
SYNC_INTERVAL = 60.0
log = logging.getLogger("mssante.directory")


class DirectoryService:
    """Starts slapd when managed, publishes accounts, re-syncs them periodically."""

    name = "directory"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.directory = Directory(gateway.settings)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        revocation = self._gateway.revocation
        managed = self.directory.managed
        if revocation is not None and managed is not None:
            # slapd reads the bundle at start; later changes go through cn=config.
            await asyncio.to_thread(write_crls, managed.layout, revocation.pem_bundle())
            revocation.add_listener(self.update_crls)
        await self.directory.start()
        self._gateway.directory = self.directory
        await self.sync()
        self._task = asyncio.create_task(self._periodic(), name="directory-sync")

    async def update_crls(self) -> None:
        """The gateway's CRLs changed: slapd refuses the same certificates from now on."""
        revocation = self._gateway.revocation
        managed = self.directory.managed
        if revocation is None or managed is None:
            return
        try:
            await managed.update_crls(revocation.pem_bundle())
        except DirectoryUnavailable as exc:
            log.warning("directory_crl_update_failed", extra={"fields": {"reason": str(exc)}})

    async def sync(self) -> None:
        db = self._gateway.db
        assert db is not None
        report = await sync_directory(db, self.directory)
        log.info("directory_synced", extra={"fields": {
            "published": report.published, "removed": report.removed, "failed": report.failed}})

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("directory_sync_failed", extra={"fields": {"reason": str(exc)}})

    def listeners(self) -> list[Listener]:
        layout = self.directory.layout
        if layout is None:
            return []
        return [
            Listener("LDAP directory", layout.host, layout.port, "StartTLS"),
            Listener("LDAP directory, LDAPS", layout.host, layout.ldaps_port, "LDAPS"),
        ]

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._gateway.directory = None
        await self.directory.stop()


def build(gateway: Gateway) -> DirectoryService | None:
    if not gateway.settings.directory.enabled:
        return None
    return DirectoryService(gateway)
