"""The retention job as a service, hourly (and once at start): expiry digests, then the
purge of expired bodies, then the purge of old traces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.service import Listener
from mail.expiry_digest import send_expiry_digests
from mail.retention import purge_expired, purge_traces

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 45
INTERVAL = 3600.0
log = logging.getLogger("mssante.retention")


class RetentionService:
    name = "retention"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def _loop(self) -> None:
        while True:
            db = self._gateway.db
            if db is not None:
                try:
                    pipeline = self._gateway.pipeline
                    if pipeline is not None:
                        await send_expiry_digests(db, pipeline)
                    await purge_expired(db, self._gateway.changes)
                    await purge_traces(db)
                except Exception as exc:  # noqa: BLE001 - retried at the next interval
                    log.warning("retention_failed", extra={"fields": {"reason": str(exc)}})
            await asyncio.sleep(INTERVAL)

    def listeners(self) -> list[Listener]:
        return []

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def build(gateway: Gateway) -> RetentionService:
    return RetentionService(gateway)
