"""The retention job as a service: purges expired bodies hourly (and once at start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.service import Listener
from mail.retention import purge_expired

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
                    await purge_expired(db, self._gateway.changes)
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
