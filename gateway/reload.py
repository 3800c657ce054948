"""SIGHUP: the running gateway re-reads what can change without a restart, and says what did.

What a reload applies: the trust space (the local file and the last good copy, whichever
changed; no download: ``mssante trustspace refresh`` fetches) and ``[transport]`` (the next
delivery attempt uses it). Other settings changed in the file are listed as needing a
restart, never half-applied. A configuration that does not load is refused as a whole and
the running one kept. The outcome goes to the log and to ``<data dir>/mssante.reload.json``
(0600), which ``mssante reload`` waits for and prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import ConfigError, Settings, load_settings
from config.settings import SECTIONS
from trustspace.whitelist import to_unicode

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = logging.getLogger("mssante.gateway")

STATUS_FILE = "mssante.reload.json"
SHOWN = 10


@dataclass
class ReloadReport:
    """One reload: sentences for the operator, and the problems (each also logged)."""

    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def _names(domains: frozenset[str]) -> str:
    shown = sorted(to_unicode(d) for d in domains)
    more = f", … {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
    return ", ".join(shown[:SHOWN]) + more


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def transport_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = [f"transport: {d} added ({new[d]})" for d in sorted(new.keys() - old.keys())]
    out += [f"transport: {d} removed (was {old[d]})" for d in sorted(old.keys() - new.keys())]
    out += [f"transport: {d} changed ({old[d]} -> {new[d]})"
            for d in sorted(old.keys() & new.keys()) if old[d] != new[d]]
    return out


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """``section.key`` of every changed setting a reload does not apply."""
    changed: list[str] = []
    for name in SECTIONS:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        for f in dataclasses.fields(before):
            if getattr(before, f.name) != getattr(after, f.name):
                changed.append(f"{name}.{f.name}")
    return changed


async def reload_gateway(gateway: Gateway) -> ReloadReport:
    """Applies the trust space and ``[transport]`` of the files as they are now."""
    report = ReloadReport()
    old = gateway.settings
    try:
        cfile = old.config_file if old.config_file.exists() else None
        new: Settings | None = await asyncio.to_thread(load_settings, cfile, old.data_dir)
    except ConfigError as exc:
        new = None
        report.errors.append(f"configuration {old.config_file}: {exc}; the running "
                             "configuration is kept")
    if new is not None:
        report.changes += transport_changes(dict(old.transport), dict(new.transport))
        if old.transport != new.transport:
            for service in gateway.services:
                setter = getattr(service, "set_transport", None)
                if setter is not None:
                    setter(new.transport)
            gateway.settings = dataclasses.replace(old, transport=dict(new.transport))
        later = restart_needed(old, new)
        if later:
            report.changes.append("changed but applied only at the next start: "
                                  + ", ".join(later))
    trust = gateway.trust
    if trust is not None and trust.loaded:
        before = trust.current.domains
        result = await trust.check_file()
        if result is not None and not result.ok:
            report.errors.append(f"trust space: {result.source} refused ({result.detail}); "
                                 "the previous list stays")
        after = trust.current.domains
        added, removed = after - before, before - after
        if added or removed:
            parts = []
            if added:
                parts.append(f"{_plural(len(added), 'domain')} added ({_names(added)})")
            if removed:
                parts.append(f"{_plural(len(removed), 'domain')} removed ({_names(removed)})")
            report.changes.append(f"trust space: {'; '.join(parts)}; "
                                  f"{trust.current.count} domains from {trust.current.source}")
    log.info("gateway_reloaded", extra={"fields": {
        "changes": len(report.changes), "errors": len(report.errors)}})
    for error in report.errors:
        log.warning("gateway_reload_refused", extra={"fields": {"detail": error}})
    return report


class Reloader:
    """Runs one reload at a time on SIGHUP and records each outcome for ``mssante reload``."""

    def __init__(self, gateway: Gateway,
                 others: Callable[[], Awaitable[None]] | None = None) -> None:
        self.gateway = gateway
        self._others = others
        """Reloads the worker processes (gateway/supervisor.py); awaited before the outcome
        is recorded, so ``mssante reload`` returns once every process applied it."""
        self.count = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        """The SIGHUP handler (runs in the event loop)."""
        task = asyncio.create_task(self._run(), name="reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        async with self._lock:
            try:
                report = await reload_gateway(self.gateway)
                if self._others is not None:
                    await self._others()
            except Exception as exc:  # noqa: BLE001 - a reload must never stop the gateway
                log.exception("gateway_reload_failed")
                report = ReloadReport(errors=[f"reload failed: {exc}"])
            self.count += 1
            await asyncio.to_thread(self._record, report)

    def _record(self, report: ReloadReport) -> None:
        doc: dict[str, Any] = {
            "pid": os.getpid(), "count": self.count,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "changes": report.changes, "errors": report.errors,
        }
        path = status_path(self.gateway.settings.data_dir)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)
        tmp.replace(path)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def read_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(status_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
