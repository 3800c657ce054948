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

After each checkpoint the newest one is handed to the configured witnesses
(:mod:`mail.witness`: ``[proofs] witness_url``, ``witness_address``); an endpoint that
refuses it or cannot be reached is tried again with a doubling delay (2 s up to 5 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from accounts.notify import outbox_for
from gateway.service import Listener
from mail.witness import WitnessRefused, hand_to_witnesses
from storage import proofs

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 5  # started first, stopped last: the final checkpoint covers everything
POLL = 1.0  # seconds between looks at the unsigned count
RETRY = 30.0  # seconds to wait after a failure (a locked or unreachable database)
WITNESS_FIRST_RETRY = 2.0
WITNESS_MAX_RETRY = 300.0
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
        witness = gateway.settings.proofs
        self._witnesses = bool(witness.witness_url or witness.witness_address)
        self._witness_pending = self._witnesses  # a restart hands over what was left
        self._witness_next = 0.0
        self._witness_delay = WITNESS_FIRST_RETRY

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
            self._witness_pending = self._witnesses
            self._witness_next = 0.0
        await self.witness()

    async def witness(self) -> None:
        """Hands the newest checkpoint to the witnesses when one is waiting and due."""
        db = self._gateway.db
        if not self._witness_pending or db is None or time.monotonic() < self._witness_next:
            return
        settings = self._gateway.settings
        try:
            await hand_to_witnesses(db, settings,
                                    outbox_for(settings.data_dir, settings.primary_domain))
        except WitnessRefused:
            self._witness_next = time.monotonic() + self._witness_delay
            self._witness_delay = min(self._witness_delay * 2, WITNESS_MAX_RETRY)
            return
        self._witness_pending = False
        self._witness_delay = WITNESS_FIRST_RETRY

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
                else:
                    await self.witness()
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
