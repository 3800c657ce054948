"""systemd's readiness protocol (sd_notify): READY, STOPPING, WATCHDOG and STATUS.

With ``Type=notify`` systemd considers the gateway started only when it says ``READY=1``,
which it does once every listener is bound, so units ordered after it (a load balancer
check, a monitoring probe) never meet a half-started gateway. ``STOPPING=1`` at SIGTERM
lets systemd show the graceful stop; ``WATCHDOG=1`` at half the ``WatchdogSec`` period
proves the event loop still turns (a loop stuck in a blocking call gets the process
restarted). The protocol is one datagram per message on the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET`` (an ``@`` first means the abstract namespace); without that variable
every call does nothing, so the same code runs under systemd, in a terminal and in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` when it is set."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isascii() and usec.isdigit() and int(usec) > 0 and (
            not pid or pid == str(os.getpid())
        ):
            self.watchdog_interval = int(usec) / 2_000_000  # half the period, in seconds

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Sends ``KEY=value`` lines (``ready=1`` → ``READY=1``); False when not under systemd
        or when the socket is gone (never an exception: notification is best effort)."""
        if self._address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        with contextlib.suppress(OSError), socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM
        ) as sock:
            sock.sendto(message.encode("utf-8"), self._address)
            return True
        return False

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Pings ``WATCHDOG=1`` at half the period until ``stop`` is set (no-op without)."""
        if self.watchdog_interval is None or self._address is None:
            return
        while not stop.is_set():
            self.send(watchdog=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.watchdog_interval)
