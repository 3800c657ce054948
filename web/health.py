"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work).

Liveness says only that the event loop runs: a load balancer restarting a gateway because
the database is slow would make things worse. Readiness runs every check the composition
root registered (database, directory, trust space), each under a time limit, and names the
ones that fail, so an operator reading the answer knows where to look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

Check = Callable[[], Awaitable[str | None]]
"""A readiness check: None when ready, otherwise why not (one short sentence)."""

CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    results: dict[str, str]
    """Check name → "ok" or the reason it failed."""


async def run_checks(checks: Mapping[str, Check], limit: float = CHECK_TIMEOUT) -> Readiness:
    """Runs the checks concurrently; a check that raises or overruns counts as failed."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(limit):
                problem = await check()
        except TimeoutError:
            return f"no answer within {limit:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready", with its reason
            return f"{type(exc).__name__}: {exc}"[:200]
        return problem or "ok"

    names = list(checks)
    outcomes = await asyncio.gather(*(one(checks[n]) for n in names))
    results = dict(zip(names, outcomes, strict=True))
    return Readiness(all(v == "ok" for v in results.values()), results)
