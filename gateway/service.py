"""What the runtime expects of each service it starts (SMTP, IMAP, directory, workers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Listener:
    """One listening socket, as printed in the start-up banner."""

    label: str
    host: str
    port: int
    security: str  # "STARTTLS", "implicit TLS", "StartTLS", "LDAPS"…


class Service(Protocol):
    """A long-running part of the gateway.

    ``start`` returns once the service accepts work (sockets bound); ``stop`` stops accepting
    at once, lets running sessions finish for at most ``grace`` seconds, then closes them.
    """

    name: str

    async def start(self) -> None: ...

    def listeners(self) -> list[Listener]: ...

    async def stop(self, grace: float) -> None: ...
