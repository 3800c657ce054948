"""RFC 8474 OBJECTID: the identifiers a client keys its cache on.

* MAILBOXID: ``F`` and the mailbox's UIDVALIDITY. UIDVALIDITY values come from one
  server-wide counter that only grows (:func:`storage.folders._new_uidvalidity`), are given
  once at CREATE and kept by RENAME, so the id is unique, never reused and survives a
  rename (RFC 8474 §4.1); a mailbox deleted and created again gets a new one.
* EMAILID: ``M`` and the message row's id. Every mailbox copy of one delivered message
  (COPY, MOVE, several local recipients) points at the same row, so they share it as RFC
  8474 §5.1 asks, and message rows are never deleted (the retention purge only erases the
  body), so an id is never given to another message.
* THREADID: NIL, which RFC 8474 §5.2 allows for a server that does not compute threads.
"""

from __future__ import annotations

import re

__all__ = ["email_id", "mailbox_id", "message_row_of"]

_EMAILID = re.compile(r"M([1-9][0-9]{0,18})\Z")


def mailbox_id(uidvalidity: int) -> str:
    return f"F{uidvalidity}"


def email_id(message_id: int) -> str:
    return f"M{message_id}"


def message_row_of(emailid: str) -> int | None:
    """The message row an EMAILID names (SEARCH EMAILID, RFC 8474 §6); None if none can."""
    m = _EMAILID.match(emailid)
    return int(m.group(1)) if m else None
