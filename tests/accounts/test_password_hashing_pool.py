"""argon2 has its own worker threads: fifty logins' password checks must not queue in
front of the event loop's other thread work (body encryption at SMTP accept, file writes).

Before, argon2 ran in the default executor that ``asyncio.to_thread`` shares, so during a
burst of portal logins the SMTP accept path waited behind every queued hash (bench/web.py
saw the submission accept rate fall to 7 % of its value alone)."""

from __future__ import annotations

import asyncio
import time

from accounts.passwords import DUMMY_HASH, verify_secret


async def test_thread_work_is_not_queued_behind_password_hashes() -> None:
    done: list[float] = []

    async def check() -> None:
        await verify_secret(DUMMY_HASH, "wrong")
        done.append(time.monotonic())

    hashes = [asyncio.create_task(check()) for _ in range(24)]
    await asyncio.sleep(0)  # the hashes are submitted first
    await asyncio.to_thread(lambda: None)
    other = time.monotonic()
    await asyncio.gather(*hashes)
    assert other < min(done), "other thread work waited for password hashes"
