"""Application passwords: generation and argon2id hashing, off the event loop.

Application passwords are per device and revocable (docs/architecture.md §1 rule 3). They
are random, so they need no strength policy; they are shown once and stored only as argon2id hashes.
Hashing costs tens of milliseconds of CPU on purpose, so it always runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 second recommended option (memory-constrained): argon2id, t=3, m=64 MiB, p=4.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)

# Grouped for reading aloud and typing on a phone; 20 symbols of a 32-letter alphabet = 100 bits.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def generate_app_password() -> str:
    """A new application password such as ``k7mq-x2dp-9rfa-hw3n-c8ve``."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "-".join(chars[i : i + 4] for i in range(0, 20, 4))


def hash_secret_sync(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret_sync(encoded: str, secret: str) -> bool:
    """argon2id verification; the final comparison inside argon2 is constant time."""
    try:
        return _HASHER.verify(encoded, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


HASH_THREADS = max(1, os.cpu_count() or 1)
"""argon2 runs in its own threads, as many as cores: a burst of logins then queues only
behind other logins, never in front of the default executor's work (``asyncio.to_thread``
of body encryption at SMTP accept, file writes), which kept the rest of the gateway waiting
behind fifty queued hashes."""
HASH_NICE = 10
"""Scheduling priority of those threads (Linux threads have their own nice value, and the
threads libargon2 starts for its lanes inherit it): hashing uses every core by design, and
without this the event loop serving every other session got a fifth of the CPU during a
burst of logins. Logins then take what the rest of the gateway leaves."""


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


_POOL = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2",
                           initializer=_lower_priority)


async def hash_secret(secret: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_POOL, hash_secret_sync, secret)


async def verify_secret(encoded: str, secret: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _POOL, verify_secret_sync, encoded, secret)


# A hash of a random secret, verified when no account matches so that an unknown address
# costs the same time as a wrong password (no account enumeration by timing).
DUMMY_HASH = hash_secret_sync(secrets.token_urlsafe(16))
