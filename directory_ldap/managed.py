"""Debian's slapd as a child process of the gateway: start, wait until it answers, restart.

The process runs in the foreground (``-d 0``) so asyncio owns it: a watcher task notices an
exit and restarts it with exponential back-off (0.5 s doubling to 30 s, reset after a minute
of good health), logging one line per event. Stopping sends SIGTERM so MDB closes cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import time
from pathlib import Path

import ldap
import ldap.sasl

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
        await asyncio.to_thread(_stop_stale_instance, self.layout)
        await asyncio.to_thread(slapd_config.write_conf, self.layout)
        sock = self.layout.socket_path
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()  # a killed slapd leaves its socket behind
        logf = self.layout.log_file.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.slapd_path, "-d", "0", "-f", str(self.layout.conf_file),
                "-h", self.layout.listen_urls,
                stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True, preexec_fn=_die_with_parent,
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
            if self._consume_restart_request():
                # a planned restart (an import switched the national generation): no back-off
                log.info("event=slapd_restarting reason=requested pid=%s", self._proc.pid)
                try:
                    await self._spawn()
                except DirectoryUnavailable as exc:
                    log.error("event=slapd_restart_failed reason=%s", exc)
                else:
                    continue
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

    def _consume_restart_request(self) -> bool:
        try:
            self.layout.restart_marker.unlink()
        except FileNotFoundError:
            return False
        return True

    async def update_crls(self, pem: bytes) -> bool:
        """Gives slapd new revocation lists without a restart; True when they changed.

        Rewriting ``olcTLSCRLFile`` in cn=config (over ldapi, as the service identity) makes
        slapd build a new TLS context for the connections that follow; open connections keep
        the certificate they were accepted with, as on the gateway's own listeners.
        """
        if not await asyncio.to_thread(slapd_config.write_crls, self.layout, pem):
            return False
        if self.pid is None or not pem:
            return True  # the next spawn reads the bundle (write_conf)
        await asyncio.to_thread(_set_crl_file, self.layout)
        log.info("event=slapd_crl_reloaded file=%s", self.layout.crl_file)
        return True

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


def _set_crl_file(layout: SlapdLayout) -> None:
    conn = ldap.initialize(layout.ldapi_url, bytes_mode=False)
    try:
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
        conn.sasl_interactive_bind_s("", ldap.sasl.external())
        conn.modify_s("cn=config", [(ldap.MOD_REPLACE, "olcTLSCRLFile",
                                     [str(layout.crl_file).encode()])])
    except ldap.LDAPError as exc:
        raise DirectoryUnavailable(f"slapd did not take the new CRL file: {exc}") from None
    finally:
        conn.unbind_s()


def _die_with_parent() -> None:
    """Runs in the forked child: slapd gets SIGTERM if the gateway dies, even by SIGKILL.

    Without it a killed gateway leaves its slapd holding the ports and the database, and the
    next start fails. (Linux prctl PR_SET_PDEATHSIG; harmless elsewhere.)
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _stop_stale_instance(layout: SlapdLayout) -> None:
    """Stops a slapd left running on this data dir by a process that died before it."""
    pid = _read_pid(layout)
    if pid is None or not _alive(pid):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if str(layout.conf_file).encode() not in cmdline:
        return  # the pid was reused by another program: not ours to stop
    log.warning("event=slapd_stale_stopped pid=%s", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _read_pid(layout: SlapdLayout) -> int | None:
    try:
        return int(layout.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child of ours that exited but is not reaped yet is gone for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def request_restart(layout: SlapdLayout, within: float = START_TIMEOUT) -> bool:
    """Restarts the slapd serving ``layout`` through its watcher, whichever process owns it
    (this one, or ``mssante serve`` while a command imports): a marker file tells the watcher
    the exit is planned, SIGTERM closes MDB cleanly. True once a new slapd answers; False when
    none ran or nobody restarted it (the caller then starts one)."""
    pid = await asyncio.to_thread(_read_pid, layout)
    if pid is None or not _alive(pid):
        return False
    await asyncio.to_thread(layout.restart_marker.write_text, str(pid))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    probe = ManagedSlapd(layout)
    deadline = time.monotonic() + within
    exited_at: float | None = None
    while time.monotonic() < deadline:
        if exited_at is None and not _alive(pid):
            exited_at = time.monotonic()
        if exited_at is not None:
            new = await asyncio.to_thread(_read_pid, layout)
            if new not in (None, pid) and await asyncio.to_thread(probe._answers):
                log.info("event=slapd_restarted old_pid=%s pid=%s", pid, new)
                return True
            if time.monotonic() - exited_at > 5.0 and layout.restart_marker.exists():
                break  # no watcher took the request: an orphaned slapd
        await asyncio.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        layout.restart_marker.unlink()
    return False
