"""Signs the proof ledger (docs/architecture.md §3), so deleting newest records is detected.

The hash chain alone cannot show that the last records were cut off; a signed checkpoint of
the newest record can. A checkpoint is signed:

- at start-up, over whatever the previous run left unsigned: a gateway that crashes and
  restarts more often than the interval would otherwise never sign anything;
- as soon as ``[proofs] checkpoint_every_records`` records are unsigned, so a busy gateway
  never has more than that many records an attacker could cut off undetected;
- every ``[proofs] checkpoint_interval`` seconds while anything is unsigned;
- at shutdown.

The job looks at the number of unsigned records once a second (two index lookups), which
also catches records written by other nodes or by command-line tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from gateway.service import Listener
from storage import proofs

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 5  # started first, stopped last: the final checkpoint covers everything
POLL = 1.0  # seconds between looks at the unsigned count
RETRY = 30.0  # seconds to wait after a failure (a locked or unreachable database)
log = logging.getLogger("mssante.proofs")


class CheckpointService:
    name = "proof checkpoints"

    def __init__(
        self,
        gateway: Gateway,
        interval: float | None = None,
        every_records: int | None = None,
    ) -> None:
        settings = gateway.settings.proofs
        self._gateway = gateway
        self._interval = settings.checkpoint_interval if interval is None else interval
        self._every = settings.checkpoint_every_records if every_records is None else every_records
        self._last_attempt = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.sign()
        except Exception as exc:  # noqa: BLE001 - the loop retries; starting matters more
            log.warning("proof_checkpoint_failed", extra={"fields": {"reason": str(exc)}})
        self._task = asyncio.create_task(self._loop(), name="proof-checkpoints")

    async def sign(self) -> None:
        self._last_attempt = time.monotonic()
        db = self._gateway.db
        if db is None:
            return
        settings = self._gateway.settings
        async with db.begin() as conn:
            seq = await proofs.checkpoint(
                conn, db.keyring, origin=settings.proof_origin, directory=settings.checkpoint_dir
            )
        if seq is not None:
            log.info("proof_checkpoint_signed", extra={"fields": {"seq": seq}})

    async def _due(self) -> bool:
        """True when enough records are unsigned, or some are and the interval has passed."""
        db = self._gateway.db
        if db is None:
            return False
        async with db.read() as conn:
            unsigned = await proofs.unsigned_records(conn)
        if unsigned >= self._every:
            return True
        return unsigned > 0 and time.monotonic() - self._last_attempt >= self._interval

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(min(POLL, self._interval))
            try:
                if await self._due():
                    await self.sign()
            except Exception as exc:  # noqa: BLE001 - retried a little later
                log.warning("proof_checkpoint_failed", extra={"fields": {"reason": str(exc)}})
                await asyncio.sleep(min(RETRY, self._interval))

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
