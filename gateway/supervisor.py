"""Several worker processes under one supervisor (``[gateway] workers`` > 1).

Why processes: one Python process uses one core, whatever the machine has; Postfix and
Dovecot spread their sessions over many processes. Here the supervisor binds the SMTP and
IMAP listening sockets and starts N workers (:mod:`gateway.worker`) that inherit them and
each accept connections and run the sessions on their own event loop. The supervisor keeps
what must exist once: the background jobs (outbound queue, retention, proof checkpoints,
directory publishing, trust-space download), the web portal (its login sessions live in
the memory of one process) and the pid file, sd_notify and signal handling.

Each worker listens on its own socket bound with ``SO_REUSEPORT`` to the address the
supervisor reserved (bound with ``SO_REUSEPORT`` too, but not listening, so the kernel
never hands it a connection). Why not one listening socket shared by every worker: on a
shared socket the kernel wakes every waiting worker and the one that most recently waited
wins, so at light load one worker takes nearly every connection (measured: 8 IMAP
sessions out of 8 on one worker), and a long-lived IDLE or SMTP session stays where it
landed. With ``SO_REUSEPORT`` the kernel spreads new connections evenly by their
addresses. Why the supervisor still reserves the port: port 0 (tests) must give one port
for every worker, a restarted worker must find the same port, and no other program may
take the port while a worker restarts. The price: connections waiting in the accept
queue of a worker that is killed are reset (the client retries), unless the kernel
migrates them (``sysctl net.ipv4.tcp_migrate_req=1``, Linux 5.14+).

A worker that dies is started again at once, then after 0.5, 1, 2 … up to 30 s if it keeps
dying young. SIGTERM/SIGINT reach the workers, which stop accepting and give their
sessions ``shutdown_grace`` seconds; SIGHUP reloads the supervisor and every worker. What
one worker commits (a delivery, a flag change) reaches the IDLE sessions of the others
through the supervisor (:mod:`gateway.worker_link`) in well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import Settings
from config.metrics import Snapshot
from gateway.service import Listener
from gateway.startup import StartupError
from gateway.worker_link import Message, WorkerLink
from mail.changes import ChangeHub
from trustspace.tickets import KEY_LENGTH

log = logging.getLogger("mssante.workers")

BACKLOG = 1024
RESTART_FIRST = 0.1
"""Seconds before restarting a worker that ran well (crashes happen)."""
RESTART_MAX = 30.0
STABLE_AFTER = 30.0
"""A worker that lived this long restarts quickly again after its next death."""
READY_TIMEOUT = 60.0
METRICS_TIMEOUT = 2.0
RELOAD_TIMEOUT = 10.0
KILL_MARGIN = 10.0
"""Seconds after the grace period before a worker that does not stop is killed."""

# kind → (service name for errors, banner label, security, port setting)
LISTENERS: dict[str, tuple[str, str, str, Callable[[Settings], int]]] = {
    "relay": ("smtp", "SMTP relay between operators", "STARTTLS, mutual TLS",
              lambda s: s.smtp.relay_port),
    "submission": ("smtp", "SMTP submission", "STARTTLS", lambda s: s.smtp.submission_port),
    "submissions": ("smtp", "SMTP submission, implicit TLS", "implicit TLS",
                    lambda s: s.smtp.submissions_port),
    "imap": ("IMAP", "IMAP (STARTTLS)", "STARTTLS", lambda s: s.imap.port),
    "imaps": ("IMAP", "IMAP (implicit TLS)", "implicit TLS", lambda s: s.imap.tls_port),
}


def worker_count(settings: Settings) -> int:
    """``[gateway] workers``, 0 meaning one per CPU this process may use."""
    if settings.gateway.workers > 0:
        return settings.gateway.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bind_listeners(settings: Settings) -> dict[str, socket.socket]:
    """The SMTP and IMAP listening sockets, bound here once for every worker."""
    from gateway.runtime import _bind_error

    host = settings.gateway.listen
    bound: dict[str, socket.socket] = {}
    try:
        for kind, (service, _label, _security, port_of) in LISTENERS.items():
            port = port_of(settings)
            try:
                family, _, _, _, address = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)[0]
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    reuse_port(sock)
                    sock.bind(address)  # reserved; the workers listen
                except OSError:
                    sock.close()
                    raise
            except OSError as exc:
                raise StartupError(_bind_error(service, exc)) from None
            sock.set_inheritable(True)
            bound[kind] = sock
    except BaseException:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def reuse_port(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def worker_listener(reserved: socket.socket) -> socket.socket:
    """In a worker: its own listening socket on the address its supervisor reserved."""
    sock = socket.socket(reserved.family, socket.SOCK_STREAM)
    try:
        reuse_port(sock)
        sock.bind(reserved.getsockname())
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def listeners_of(settings: Settings, sockets: dict[str, socket.socket]) -> list[Listener]:
    host = settings.gateway.listen
    return [Listener(LISTENERS[kind][1], host, int(sock.getsockname()[1]), LISTENERS[kind][2])
            for kind, sock in sockets.items()]


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    link: WorkerLink
    started: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class WorkerPool:
    """Starts, watches, restarts and stops the worker processes, and relays between them."""

    def __init__(self, settings: Settings, sockets: dict[str, socket.socket], count: int,
                 changes: ChangeHub, on_queued: Callable[[], None]) -> None:
        self.settings = settings
        self.sockets = sockets
        self.count = count
        self.changes = changes
        self.on_queued = on_queued
        self.workers: dict[int, _Worker] = {}
        self.restarts = 0
        self._stopping = False
        self._failures: dict[int, int] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._restarting: set[asyncio.Task[None]] = set()
        self.ticket_keys = secrets.token_bytes(KEY_LENGTH)
        """TLS session ticket keys of every process (trustspace/tickets.py): a client
        resumes its session whichever worker it reaches next time."""

    # -- start ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts every worker and returns once all of them serve."""
        for index in range(self.count):
            await self._spawn(index)
        waits = {asyncio.ensure_future(w.ready.wait()): w for w in self.workers.values()}
        exits = {asyncio.ensure_future(w.process.wait()): w for w in self.workers.values()}
        try:
            pending = set(waits)
            deadline = time.monotonic() + READY_TIMEOUT
            while pending:
                done, _ = await asyncio.wait(
                    pending | set(exits), timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise StartupError(f"workers did not start within {READY_TIMEOUT:g} s")
                for fut in done:
                    if fut in exits:
                        worker = exits[fut]
                        raise StartupError(
                            f"worker {worker.index} exited with code {fut.result()} while "
                            "starting; see its error above")
                pending -= done
        finally:
            for fut in [*waits, *exits]:
                fut.cancel()

    def environment(self) -> dict[str, str]:
        """The workers' environment: ours, the same code first on the path, and no systemd
        notification socket (only the supervisor speaks to systemd)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS")}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
        return env

    async def _spawn(self, index: int) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        keys_in, keys_out = os.pipe()  # 80 octets: far below a pipe's buffer
        os.write(keys_out, self.ticket_keys)
        os.close(keys_out)
        fds = {kind: sock.fileno() for kind, sock in self.sockets.items()}
        args = [sys.executable, "-m", "gateway.worker",
                "--data-dir", str(self.settings.data_dir),
                "--sockets", ",".join(f"{k}={fd}" for k, fd in fds.items()),
                "--link", str(child.fileno()), "--ticket-keys", str(keys_in),
                "--index", str(index)]
        if self.settings.config_file.exists():
            args += ["--config", str(self.settings.config_file)]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, pass_fds=[*fds.values(), child.fileno(), keys_in],
                env=self.environment(), stdin=asyncio.subprocess.DEVNULL)
        finally:
            child.close()
            os.close(keys_in)
        link = await WorkerLink.open(parent)
        worker = _Worker(index, process, link)
        self.workers[index] = worker
        worker.tasks.append(asyncio.create_task(
            link.run(lambda m: self._on_message(worker, m)), name=f"worker-{index}-link"))
        worker.tasks.append(asyncio.create_task(self._watch(worker), name=f"worker-{index}"))
        log.info("worker_started", extra={"fields": {"worker": index, "pid": process.pid}})

    # -- messages ------------------------------------------------------------------------
    def _on_message(self, worker: _Worker, message: Message) -> None:
        kind = message.get("kind")
        if kind == "changed":
            ids = [int(i) for i in message.get("ids", ())]
            self.changes.wake(ids)
            self.broadcast("changed", skip=worker, ids=ids)
        elif kind == "queued":
            self.on_queued()
        elif kind == "ready":
            worker.ready.set()
        elif kind == "answer":
            fut = self._pending.pop(int(message.get("id") or 0), None)
            if fut is not None and not fut.done():
                fut.set_result(message.get("data"))

    def broadcast(self, kind: str, *, skip: _Worker | None = None, **fields: object) -> None:
        for worker in list(self.workers.values()):
            if worker is not skip:
                worker.link.send(kind, **fields)

    def publish(self, folder_ids: set[int]) -> None:
        """A :class:`mail.changes.ChangeHub` publisher: the supervisor's own changes (the
        portal's webmail, retention, DSNs filed by the outbound queue) reach every worker."""
        if folder_ids:
            self.broadcast("changed", ids=sorted(folder_ids))

    async def metrics(self) -> list[Snapshot]:
        """Every serving worker's instrument snapshot (those that answer in time)."""
        return [answer or [] for answer in await self._ask("metrics", METRICS_TIMEOUT)]

    async def _ask(self, kind: str, within: float) -> list[Any]:
        """Sends a request to every serving worker; their answers (``data``) in time."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for worker in list(self.workers.values()):
            if not worker.ready.is_set() or worker.link.closed:
                continue
            request = next(self._ids)
            fut: asyncio.Future[Any] = loop.create_future()
            self._pending[request] = fut
            futures.append(fut)
            worker.link.send(kind, id=request)
        if not futures:
            return []
        await asyncio.wait(futures, timeout=within)
        out = [f.result() for f in futures if f.done() and not f.cancelled()]
        for f in futures:
            f.cancel()
        return out

    # -- deaths and restarts -------------------------------------------------------------
    async def _watch(self, worker: _Worker) -> None:
        code = await worker.process.wait()
        await worker.link.close()
        if self._stopping or self.workers.get(worker.index) is not worker:
            return
        lived = time.monotonic() - worker.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(worker.index, 0) + 1
        self._failures[worker.index] = failures
        delay = RESTART_FIRST if failures <= 1 else min(RESTART_MAX, 0.5 * 2 ** (failures - 2))
        log.warning("worker_exited", extra={"fields": {
            "worker": worker.index, "pid": worker.process.pid, "code": code,
            "lived_s": round(lived, 1), "restart_in_s": delay}})
        task = asyncio.create_task(self._restart(worker.index, delay))
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    async def _restart(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            await self._spawn(index)
        except OSError as exc:
            log.error("worker_start_failed", extra={"fields": {"worker": index,
                                                                "reason": str(exc)}})
            return
        self.restarts += 1

    # -- reload and stop -----------------------------------------------------------------
    async def reload(self) -> None:
        """SIGHUP: every worker re-reads the trust space (and logs what changed); returns
        when all have (or after :data:`RELOAD_TIMEOUT`)."""
        await self._ask("reload", RELOAD_TIMEOUT)

    async def stop(self, grace: float) -> None:
        """SIGTERM to every worker; each finishes its sessions within ``grace``; killed
        after ``grace`` + :data:`KILL_MARGIN`."""
        self._stopping = True
        for task in list(self._restarting):
            task.cancel()
        workers = list(self.workers.values())
        for worker in workers:
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        for sock in self.sockets.values():
            sock.close()  # no worker will start again; the workers hold their own copies
        waits = [asyncio.ensure_future(w.process.wait()) for w in workers]
        if waits:
            _, late = await asyncio.wait(waits, timeout=grace + KILL_MARGIN)
            if late:
                for worker in workers:
                    if worker.process.returncode is None:
                        log.warning("worker_killed", extra={"fields": {
                            "worker": worker.index, "pid": worker.process.pid}})
                        with contextlib.suppress(ProcessLookupError):
                            worker.process.kill()
                await asyncio.wait(waits, timeout=5.0)
        for worker in workers:
            for task in worker.tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await worker.link.close()
        self.workers.clear()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers.values()]
