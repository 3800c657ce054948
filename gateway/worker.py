"""One worker process: the SMTP and IMAP sessions on the addresses its supervisor reserved.

Started by :mod:`gateway.supervisor` as ``python -m gateway.worker``, with the reserved
sockets (it listens on its own ``SO_REUSEPORT`` socket at each address) and its end of
the :mod:`~gateway.worker_link` as inherited file descriptors. It runs its own event loop
(uvloop), its own database connections (each write committed and fsynced before its 250
or OK, exactly as in one process) and its own group commit. What a worker changes reaches
the other processes through the link; what they change reaches it the same way. It stops
gracefully on SIGTERM or SIGINT (sessions get the grace period), and on its own when the
link ends (its supervisor is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from config import ConfigError, load_settings
from config.metrics import snapshot
from gateway import heap
from gateway.logs import configure_logging
from gateway.reload import reload_gateway
from gateway.runtime import Gateway
from gateway.startup import StartupError, run_async
from gateway.supervisor import worker_listener
from gateway.worker_link import Message, WorkerLink
from trustspace.tickets import KEY_LENGTH, use_ticket_keys

log = logging.getLogger("mssante.workers")

EXIT_STARTUP = 3
"""A worker that cannot start (its supervisor stops restarting it after a few)."""


def parse_fds(text: str) -> dict[str, int]:
    """``relay=5,submission=6`` → {"relay": 5, "submission": 6}."""
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, fd = item.partition("=")
        out[name] = int(fd)
    return out


async def run_worker(gateway: Gateway, link: WorkerLink) -> int:
    """Serves until SIGTERM/SIGINT or the end of the link; returns the exit code."""
    stop = asyncio.Event()
    tasks: set[asyncio.Task[Any]] = set()

    def background(coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_message(message: Message) -> None:
        kind = message.get("kind")
        if kind == "changed":
            gateway.changes.wake(int(i) for i in message.get("ids", ()))
        elif kind == "reload":
            background(reload(message.get("id")))
        elif kind == "metrics":
            link.send("answer", id=message.get("id"), data=snapshot())

    async def reload(request: object) -> None:
        try:
            await reload_gateway(gateway)
        finally:
            link.send("answer", id=request, data=None)

    # Changes made here go to the supervisor, which tells the other workers.
    def publish(ids: set[int]) -> None:
        if ids:
            link.send("changed", ids=sorted(ids))

    gateway.changes.attach(publish)
    await gateway.start()
    assert gateway.pipeline is not None
    gateway.pipeline.on_queued(lambda: link.send("queued"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the supervisor relays reloads
    reading = asyncio.create_task(link.run(on_message), name="worker-link")
    reading.add_done_callback(lambda _t: stop.set())
    heap.settle()
    link.send("ready", pid=os.getpid())
    log.info("worker_ready", extra={"fields": {"listeners": len(gateway.listeners())}})
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await gateway.stop()
        reading.cancel()
        for task in [reading, *tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await link.close()
    log.info("worker_stopped")
    return 0


class _WorkerField(logging.Filter):
    """Adds ``worker=N`` to every line, so an operator sees which process said what."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.worker")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sockets", required=True, help="kind=fd,… listening sockets")
    parser.add_argument("--link", type=int, required=True, help="fd of the supervisor link")
    parser.add_argument("--ticket-keys", type=int, default=None,
                        help="fd of a pipe holding the shared TLS session ticket keys")
    parser.add_argument("--index", type=int, default=0, help="worker number, in every log line")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, args.data_dir)
    except ConfigError as exc:
        print(f"mssante worker: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    configure_logging(settings.gateway.log_format, settings.gateway.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerField(args.index))
    sockets: dict[str, socket.socket] = {}
    for name, fd in parse_fds(args.sockets).items():
        with socket.socket(fileno=fd) as reserved:
            sockets[name] = worker_listener(reserved)
    link_sock = socket.socket(fileno=args.link)
    if args.ticket_keys is not None:
        with os.fdopen(args.ticket_keys, "rb") as pipe:
            use_ticket_keys(pipe.read(KEY_LENGTH))

    async def run() -> int:
        link = await WorkerLink.open(link_sock)
        gateway = Gateway(settings, role="worker", sockets=sockets)
        return await run_worker(gateway, link)

    try:
        return run_async(run())
    except StartupError as exc:
        print(f"mssante worker: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
