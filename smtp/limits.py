"""Per-session limits and the per-address connection counter of the SMTP servers.

The values come from ``[smtp]`` in the settings (one default, one place); this module only
groups them for the session and keeps the live connection count per client address, which
lets a server refuse the N+1th connection from one host at connect time (421 4.7.0) the way
Postfix's anvil does with ``smtpd_client_connection_count_limit``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from config.settings import SmtpSettings


@dataclass(frozen=True)
class SessionLimits:
    """The limits one SMTP session enforces."""

    max_message_size: int
    max_recipients: int
    max_line_length: int
    max_header_count: int
    max_header_size: int
    max_bad_commands: int
    idle_timeout: float
    session_timeout: float
    max_connections_per_ip: int
    handshake_timeout: float = 10.0
    """Seconds a TLS handshake (implicit or after STARTTLS) may take."""

    @classmethod
    def from_settings(
        cls, smtp: SmtpSettings, *, handshake_timeout: float = 10.0
    ) -> SessionLimits:
        return cls(
            max_message_size=smtp.max_message_size,
            max_recipients=smtp.max_recipients,
            max_line_length=smtp.max_line_length,
            max_header_count=smtp.max_header_count,
            max_header_size=smtp.max_header_size,
            max_bad_commands=smtp.max_bad_commands,
            idle_timeout=smtp.idle_timeout,
            session_timeout=smtp.session_timeout,
            max_connections_per_ip=smtp.max_connections_per_ip,
            handshake_timeout=handshake_timeout,
        )


class ConnectionCounter:
    """Live connections per client address, shared by the sessions of one server.

    A connection is counted from the TCP accept (before any TLS handshake) until its socket
    is gone; each session releases its count exactly once (``GatewaySMTP._release``).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Counts one more connection from ``address``; False (and not counted) if over."""
        if self._counts[address] >= self.limit:
            return False
        self._counts[address] += 1
        return True

    def release(self, address: str) -> None:
        self._counts[address] -= 1
        if self._counts[address] <= 0:
            del self._counts[address]

    def count(self, address: str) -> int:
        return self._counts.get(address, 0)

    def snapshot(self) -> dict[str, int]:
        """Live connections per address (empty when every connection was released)."""
        return dict(self._counts)
