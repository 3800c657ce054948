"""Starting and stopping the SMTP listeners: relay (25), submission (587), submissions (465).

The relay and submission listeners speak plain SMTP until STARTTLS (RFC 3207); the
submissions listener wraps every connection in TLS from the first octet (RFC 8314 §3.3).
Each listener shares one per-address connection counter and knows its live sessions, so
``close(grace)`` can stop accepting, let running transactions finish, then say 421.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from config.settings import Settings
from smtp import oauth as _oauth  # noqa: F401 - registers OAUTHBEARER and XOAUTH2
from smtp.auth import SaslMechanism
from smtp.limits import ConnectionCounter, SessionLimits
from smtp.policy import ServerKind, SmtpPolicy
from smtp.session import GatewaySMTP
from trustspace.proxy_protocol import gated, parse_networks

_WEAK_MINIMUMS = {
    ssl.TLSVersion.MINIMUM_SUPPORTED,
    ssl.TLSVersion.SSLv3,
    ssl.TLSVersion.TLSv1,
    ssl.TLSVersion.TLSv1_1,
}


class SmtpServer:
    """A running listener: its bound port, its live sessions, and a graceful close."""

    def __init__(
        self,
        kind: ServerKind,
        server: asyncio.Server,
        sessions: set[GatewaySMTP],
        counter: ConnectionCounter,
    ) -> None:
        self.kind = kind
        self._server = server
        self.sessions = sessions
        self.counter = counter
        self.port: int = int(server.sockets[0].getsockname()[1])
        """The bound port (useful when 0 was asked for)."""

    def connection_counts(self) -> dict[str, int]:
        """Live connections per client address (monitoring, and tests that none leak)."""
        return self.counter.snapshot()

    async def close(self, grace: float = 0.0) -> None:
        """Stops accepting, waits up to ``grace`` seconds for sessions, then closes them."""
        self._server.close()
        if self.sessions and grace > 0:
            await asyncio.wait([s.done for s in self.sessions], timeout=grace)
        remaining = list(self.sessions)
        for session in remaining:
            session.shutdown()
        if remaining:
            # let the transports flush the 421 and run connection_lost
            await asyncio.wait([s.done for s in remaining], timeout=1.0)
        await self._server.wait_closed()


def _tls_floor(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 is the minimum everywhere (MSSanté rule 2); raise a weaker floor."""
    if context.minimum_version in _WEAK_MINIMUMS:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def start_smtp_server(
    kind: ServerKind,
    settings: Settings,
    policy: SmtpPolicy,
    ssl_context: ssl.SSLContext,
    host: str,
    port: int,
    *,
    mechanisms: dict[str, SaslMechanism] | None = None,
    sock: socket.socket | None = None,
) -> SmtpServer:
    """Starts one listener (port 0: an ephemeral port, read it back from ``.port``).

    ``sock``: a socket already bound and listening (a worker process serves the socket its
    supervisor bound, gateway/supervisor.py); ``host`` and ``port`` are then ignored.

    ``ssl_context`` is the server context; for the relay it should ask for (CERT_OPTIONAL or
    CERT_REQUIRED) and verify client certificates against the trust anchors.
    """
    if kind not in ("relay", "submission", "submissions"):
        raise ValueError(f"unknown SMTP server kind {kind!r}: relay, submission or submissions")
    context = _tls_floor(ssl_context)
    limits = SessionLimits.from_settings(
        settings.smtp, handshake_timeout=settings.tls.handshake_timeout
    )
    counter = ConnectionCounter(limits.max_connections_per_ip)
    sessions: set[GatewaySMTP] = set()
    implicit = kind == "submissions"

    def factory() -> GatewaySMTP:
        return GatewaySMTP(
            kind=kind,
            policy=policy,
            limits=limits,
            hostname=settings.hostname,
            starttls_context=None if implicit else context,
            counter=counter,
            sessions=sessions,
            mechanisms=dict(mechanisms) if mechanisms is not None else None,
            implicit_tls_context=context if implicit else None,
        )

    loop = asyncio.get_running_loop()
    # Implicit TLS (RFC 8314 §3.3) is started by the session itself, so that a
    # connection counts against its address from the accept, handshake included.
    accept = gated(factory, parse_networks(settings.gateway.proxy_protocol_from),
                   settings.gateway.proxy_protocol_timeout)
    if sock is not None:
        server = await loop.create_server(accept, sock=sock)
    else:
        server = await loop.create_server(accept, host=host, port=port, reuse_address=True)
    return SmtpServer(kind, server, sessions, counter)
