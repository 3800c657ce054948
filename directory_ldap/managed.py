"""Debian's slapd as a child process of the gateway: start, wait until it answers, restart.

The process runs in the foreground (``-d 0``) so asyncio owns it: a watcher task notices an
exit and restarts it with exponential back-off (0.5 s doubling to 30 s, reset after a minute
of good health), logging one line per event. Stopping sends SIGTERM so MDB closes cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from pathlib import Path

from directory_ldap import slapd_config
from directory_ldap.errors import DirectoryUnavailable
from directory_ldap.slapd_config import SlapdLayout

log = logging.getLogger("mssante.directory.slapd")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0
START_TIMEOUT = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the system considers free now (for settings that say 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ManagedSlapd:
    """One slapd child process serving ``layout``."""

    def __init__(self, layout: SlapdLayout, slapd_path: str = "/usr/sbin/slapd") -> None:
        self.layout = layout
        self.slapd_path = slapd_path
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Writes the configuration, starts slapd and returns once it accepts connections."""
        if not await asyncio.to_thread(Path(self.slapd_path).exists):
            raise DirectoryUnavailable(
                f"slapd binary {self.slapd_path} not found; install Debian's slapd package "
                "or set [directory] url to an external server"
            )
        await asyncio.to_thread(slapd_config.write, self.layout)
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name="slapd-watcher")

    async def _spawn(self) -> None:
        sock = self.layout.socket_path
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()  # a killed slapd leaves its socket behind
        logf = self.layout.log_file.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.slapd_path, "-d", "0", "-f", str(self.layout.conf_file),
                "-h", self.layout.listen_urls,
                stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True,
            )
        finally:
            logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            if await asyncio.to_thread(self._answers):
                log.info(
                    "event=slapd_started pid=%s ldap=%s ldaps=%s",
                    self._proc.pid, self.layout.ldap_url, self.layout.ldaps_url,
                )
                self._ready.set()
                return
            await asyncio.sleep(0.05)
        tail = self._log_tail()
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        await self._proc.wait()
        raise DirectoryUnavailable(
            f"slapd did not start within {START_TIMEOUT:.0f}s (exit={self._proc.returncode}); "
            f"see {self.layout.log_file}: {tail}"
        )

    def _answers(self) -> bool:
        """True when the ldapi socket and the LDAP port both accept connections."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(self.layout.socket_path))
            with socket.create_connection((self.layout.host, self.layout.port), timeout=0.5):
                pass
        except OSError:
            return False
        return True

    def _log_tail(self) -> str:
        try:
            lines = self.layout.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    async def _watch(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._proc.wait()
            self._ready.clear()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = BACKOFF_FIRST
            log.warning(
                "event=slapd_exited code=%s restart_in=%.1fs log=%s",
                code, backoff, self.layout.log_file,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self._stopping:
                return
            try:
                await self._spawn()
                self.restarts += 1
            except DirectoryUnavailable as exc:
                log.error("event=slapd_restart_failed reason=%s", exc)

    async def wait_ready(self, within: float = 30.0) -> None:
        await asyncio.wait_for(self._ready.wait(), within)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the watcher stops restarting."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            log.info("event=slapd_stopped pid=%s", proc.pid)
        self._ready.clear()
