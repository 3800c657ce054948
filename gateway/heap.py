"""The collector's view of a serving process: what start-up built is set aside once.

Measured under the webmail benchmark (50 users on 5 INBOXes of 5,000 messages, one
process): the full (generation 2) collections took 60 to 136 ms each, every 20 to 30 s,
and a request in flight waited for all of it: they were the list page's 99th percentile.
A full collection visits every tracked object, and most of them were made at start-up and
live as long as the process (modules, the schema and compiled statements, templates, TLS
contexts, the trust space); none of them ever becomes garbage.

:func:`settle` runs once the listeners serve: one collection of what start-up discarded,
then :func:`gc.freeze` moves every surviving object to the permanent generation, which
the collector no longer visits. Objects made afterwards (sessions, indexes, caches) are
collected as before. The cost is that a reference cycle among the frozen objects that
becomes garbage later is never freed; start-up objects do not do that (a reload replaces
a handful of objects, not a heap).
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("mssante.gateway")


def settle() -> int:
    """Collects once, then freezes what is left; returns how many objects were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("heap_settled", extra={"fields": {
        "frozen_objects": frozen, "ms": round((time.perf_counter() - started) * 1000, 1)}})
    return frozen
