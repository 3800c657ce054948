"""Server-side portal sessions: the cookie carries only a random identifier.

The cookie is ``__Host-`` prefixed (so it is Secure, for this host only, path ``/``),
HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it, the first
defence against cross-site requests; each form also carries a CSRF token). A session ends
after ``idle`` seconds without a request and ``lifetime`` seconds after it began, whatever
happens; signing in replaces the identifier (no session fixation). Sessions are kept in
this process's memory, bounded: a restart signs everyone out, which is acceptable for a
portal whose logins take a minute, and several nodes need sticky routing. Anonymous
sessions (a visitor's CSRF token) and signed-in ones are bounded separately, so a flood of
anonymous requests drops only anonymous sessions, never someone's sign-in.
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
                 clock: Callable[[], float] = time.monotonic, *,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # anonymous
        self._signed: OrderedDict[str, Session] = OrderedDict()  # after rotate()

    def get(self, session_id: str | None) -> Session | None:
        """The live session, its idle clock restarted; None when unknown or expired."""
        if not session_id:
            return None
        table = self._signed if session_id in self._signed else self._sessions
        session = table.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self.idle or now - session.created > self.lifetime:
            del table[session_id]
            return None
        session.seen = now
        table.move_to_end(session_id)
        return session

    def new(self) -> Session:
        """An anonymous session (the least recently used anonymous one goes when full)."""
        session = self._make()
        self._remember(self._sessions, session)
        return session

    def _make(self) -> Session:
        now = self._clock()
        return Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)

    def _remember(self, table: OrderedDict[str, Session], session: Session) -> None:
        table[session.id] = session
        while len(table) > self._max:
            table.popitem(last=False)

    def rotate(self, session: Session) -> Session:
        """At sign-in: a new identifier and CSRF token for the same data, kept with the
        signed-in sessions; the lifetime counts from now."""
        self.drop(session)
        fresh = self._make()
        fresh.data = session.data
        self._remember(self._signed, fresh)
        return fresh

    def drop_account(self, account_id: int) -> int:
        """Ends every session signed in as ``account_id`` (a password reset); how many."""
        gone = [k for k, s in self._signed.items() if s.data.get("account_id") == account_id]
        for key in gone:
            del self._signed[key]
        return len(gone)

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self._signed.pop(session.id, None)

    def cookie_header(self, session: Session) -> str:
        return (f"{COOKIE}={session.id}; Path=/; Secure; HttpOnly; SameSite=Strict; "
                f"Max-Age={int(self.lifetime)}")

    @staticmethod
    def clear_cookie_header() -> str:
        return f"{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
