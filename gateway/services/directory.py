"""The directory service: managed slapd (or an external server) and account publishing.

Accounts reach the directory within about a second of any change, made here or by
``mssante`` in another process: the service reads the directory version
(:mod:`storage.directory_version`, one primary-key read) every ``WATCH_INTERVAL`` seconds and
re-publishes the accounts changed since its previous pass. A full reconciliation every
``SYNC_INTERVAL`` seconds is the safety net (slapd was down, a clock moved); both write and
log only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from accounts.publishing import sync_directory
from directory_ldap import Directory, DirectoryUnavailable
from directory_ldap.slapd_config import write_crls
from gateway.service import Listener
from storage import directory_version
from storage.types import utcnow

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 10
SYNC_INTERVAL = 60.0
WATCH_INTERVAL = 1.0
CLOCK_MARGIN = timedelta(seconds=120)
"""How far before its previous pass a quick pass looks: covers transactions that committed
after they stamped ``updated_at`` and clocks of other nodes a little behind ours
(re-publishing an unchanged account writes nothing)."""
log = logging.getLogger("mssante.directory")


class DirectoryService:
    """Starts slapd when managed, publishes accounts, re-syncs them periodically."""

    name = "directory"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.directory = Directory(gateway.settings)
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._version = 0
        self._last_pass: datetime | None = None
        self._sync_lock = asyncio.Lock()  # a quick pass and a full one never publish at once

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
        self._watch = asyncio.create_task(self._watch_changes(), name="directory-watch")

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

    async def _read_version(self) -> int:
        db = self._gateway.db
        assert db is not None
        async with db.read() as conn:
            return await directory_version.current(conn)

    async def sync(self, since: datetime | None = None) -> None:
        """A full reconciliation, or (``since``) a pass over the accounts changed since."""
        db = self._gateway.db
        assert db is not None
        async with self._sync_lock:
            started = utcnow()
            if since is None:
                self._version = await self._read_version()
            report = await sync_directory(db, self.directory, since)
            self._last_pass = started
        if report.changed:
            log.info("directory_synced", extra={"fields": {
                "full": since is None, "checked": report.checked,
                "published": report.published, "removed": report.removed,
                "failed": report.failed}})

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("directory_sync_failed", extra={"fields": {"reason": str(exc)}})

    async def _watch_changes(self) -> None:
        """Publishes what changed as soon as the directory version moves."""
        failing = False
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                version = await self._read_version()
                if version == self._version:
                    continue
                since = (self._last_pass or utcnow()) - CLOCK_MARGIN
                self._version = version
                await self.sync(since)
                failing = False
            except Exception as exc:  # noqa: BLE001 - retried at the next tick
                self._version = -1
                if not failing:  # once per outage, not every second
                    log.warning("directory_sync_failed", extra={"fields": {"reason": str(exc)}})
                failing = True

    def listeners(self) -> list[Listener]:
        layout = self.directory.layout
        if layout is None:
            return []
        return [
            Listener("LDAP directory", layout.host, layout.port, "StartTLS"),
            Listener("LDAP directory, LDAPS", layout.host, layout.ldaps_port, "LDAPS"),
        ]

    async def stop(self, grace: float) -> None:
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._gateway.directory = None
        await self.directory.stop()


def build(gateway: Gateway) -> DirectoryService | None:
    if not gateway.settings.directory.enabled:
        return None
    return DirectoryService(gateway)
