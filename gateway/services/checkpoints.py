"""Signs the proof ledger periodically (DESIGN.md §3), so deleting newest records is detected.

The hash chain alone cannot show that the last records were cut off; a signed checkpoint of
the newest record can. One is signed every few minutes while proofs accumulate, and one at
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.service import Listener
from storage import proofs

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ORDER = 5  # started first, stopped last: the final checkpoint covers everything
INTERVAL = 300.0
log = logging.getLogger("mssante.proofs")


class CheckpointService:
    name = "proof checkpoints"

    def __init__(self, gateway: Gateway, interval: float = INTERVAL) -> None:
        self._gateway = gateway
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="proof-checkpoints")

    async def sign(self) -> None:
        db = self._gateway.db
        if db is None:
            return
        async with db.begin() as conn:
            seq = await proofs.checkpoint(conn, db.keyring)
        if seq is not None:
            log.info("proof_checkpoint_signed", extra={"fields": {"seq": seq}})

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sign()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("proof_checkpoint_failed", extra={"fields": {"reason": str(exc)}})

    def listeners(self) -> list[Listener]:
        return []

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sign()


def build(gateway: Gateway) -> CheckpointService:
    return CheckpointService(gateway)
