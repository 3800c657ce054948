"""The line between the supervisor and one worker process: JSON messages over a socketpair.

Why a private stream socket and not signals or files: the messages must arrive in order,
at once and without polling (a folder changed by one worker wakes an IDLE session of
another within a millisecond, and costs nothing while nothing happens), and the end of the
line is itself news — a worker whose supervisor died sees end-of-file and stops.

One message a line, a JSON object whose ``"kind"`` says what it is:

- worker → supervisor: ``ready`` (its listeners serve), ``changed`` (``ids``: folders its
  commits changed), ``queued`` (it queued outbound rows), ``answer`` (``id``, ``data``:
  the answer to a request);
- supervisor → worker: ``changed`` (another process changed ``ids``), and two requests
  answered with the same ``id``: ``reload`` (SIGHUP; answered once applied) and
  ``metrics`` (answered with a snapshot of the worker's counters).

Writes never block: they go to the transport's buffer (a stuck peer only grows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mssante.workers")

MAX_LINE = 16 * 1024 * 1024
"""A metrics snapshot is the longest message (a few hundred KB with every label set)."""

Message = dict[str, Any]


class WorkerLink:
    """One end of the line: :meth:`send` a message, :meth:`run` hands each received one
    to ``on_message`` until the other end closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> WorkerLink:
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, kind: str, **fields: Any) -> None:
        if self._writer.is_closing():
            return
        line = json.dumps({"kind": kind, **fields}, separators=(",", ":")) + "\n"
        self._writer.write(line.encode("utf-8"))

    async def run(self, on_message: Callable[[Message], None]) -> None:
        """Reads until end-of-file (the peer exited or closed the line)."""
        while True:
            try:
                line = await self._reader.readline()
            except (ConnectionError, ValueError, asyncio.LimitOverrunError):
                return
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("worker_link_garbled")
                continue
            if isinstance(message, dict):
                try:
                    on_message(message)
                except Exception:  # noqa: BLE001 - one bad message must not end the line
                    log.exception("worker_link_message_failed")

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
