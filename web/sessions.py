"""Server-side portal sessions: the cookie carries only a random identifier.

The cookie is ``__Host-`` prefixed (so it is Secure, for this host only, path ``/``),
HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it, the first
defence against cross-site requests; each form also carries a CSRF token). A session ends
after ``idle`` seconds without a request and ``lifetime`` seconds after it began, whatever
happens; signing in replaces the identifier (no session fixation). Sessions are kept in
this process's memory, bounded: a restart signs everyone out, which is acceptable for a
portal whose logins take a minute, and several nodes need sticky routing.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COOKIE = "__Host-mssante"
MAX_SESSIONS = 100_000


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    data: dict[str, Any] = field(default_factory=dict)

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), token.encode("utf-8", "replace"))


class SessionStore:
    """Sessions by identifier, least recently used dropped first beyond MAX_SESSIONS."""

    def __init__(self, idle: float, lifetime: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        """The live session, its idle clock restarted; None when unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self.idle or now - session.created > self.lifetime:
            del self._sessions[session_id]
            return None
        session.seen = now
        self._sessions.move_to_end(session_id)
        return session

    def new(self) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def rotate(self, session: Session) -> Session:
        """A new identifier and CSRF token for the same data (at sign-in); the lifetime
        counts from now."""
        self._sessions.pop(session.id, None)
        fresh = self.new()
        fresh.data = session.data
        return fresh

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def cookie_header(self, session: Session) -> str:
        return (f"{COOKIE}={session.id}; Path=/; Secure; HttpOnly; SameSite=Strict; "
                f"Max-Age={int(self.lifetime)}")

    @staticmethod
    def clear_cookie_header() -> str:
        return f"{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
