"""IMAP command handlers, one module per command family, and the table the session uses.

A handler is ``async def handler(session, command) -> Done | None``: it writes untagged
responses with ``session.write`` and either returns (tagged OK) or raises
:class:`~imap.protocol.ImapRefusal`. Storage is reached only through ``session.ctx.store``
(the :class:`~mailstore.store.MailStore` protocol).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imap.protocol import ImapRefusal

if TYPE_CHECKING:
    from imap.session import Done, Session

Handler = Callable[["Session", Any], Awaitable["Done | None"]]

ANY = "any"
NOT_AUTHENTICATED = "not-authenticated"
AUTHENTICATED = "authenticated"  # authenticated or selected (RFC 9051 §3)
SELECTED = "selected"


@dataclass(frozen=True, slots=True)
class Spec:
    """A handler with the state it needs (RFC 9051 §6.1-6.4)."""

    handler: Handler
    state: str
    needs_tls: bool = False
    always_sync: bool = False  # NOOP, CHECK: always look for changes (RFC 9051 §6.1.2)

    def refusal(self, session: Session) -> ImapRefusal | None:
        if self.state == NOT_AUTHENTICATED:
            if session.authenticated:
                return ImapRefusal("BAD", None, "Already authenticated")
            if self.needs_tls and not session.tls:
                # RFC 9051 §6.2.3 / RFC 8314: credentials only over TLS.
                return ImapRefusal("NO", "PRIVACYREQUIRED",
                                   "Use STARTTLS (or the implicit TLS port) before logging in")
        elif self.state in (AUTHENTICATED, SELECTED) and not session.authenticated:
            return ImapRefusal("BAD", None, "Log in first (LOGIN or AUTHENTICATE)")
        if self.state == SELECTED and session.selected is None:
            return ImapRefusal("BAD", None, "Select a mailbox first (SELECT or EXAMINE)")
        return None


HANDLERS: dict[type, Spec] = {}


def register(command: type, state: str, *, needs_tls: bool = False,
             always_sync: bool = False) -> Callable[[Handler], Handler]:
    """Decorator adding a handler to :data:`HANDLERS`."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[command] = Spec(fn, state, needs_tls, always_sync)
        return fn

    return deco


def _load() -> None:
    from imap.commands import (  # noqa: F401 - each module registers its handlers
        any_state,
        append,
        auth,
        catenate,
        compress,
        copy_move,
        fetch,
        idle,
        mailboxes,
        metadata,
        notify,
        oauth,
        quota_acl,
        search,
        select,
        sort_thread,
        store,
    )


_load()
