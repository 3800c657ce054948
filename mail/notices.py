"""Per-account notice settings: when a sender wants a delivery notice.

A professional may want a "delivered" DSN (RFC 3464) for everything they send, as a
registered letter's acknowledgement, without their client asking ``NOTIFY=SUCCESS``
(few clients can). ``always`` makes the submission server treat a recipient given no
NOTIFY parameter as ``NOTIFY=SUCCESS,FAILURE`` (RFC 3461 §4.1): local deliveries answer at
once, and the request travels to the final operator, whose DSN comes back. ``asked`` (the
default) follows the client's parameters only. An explicit ``NOTIFY=NEVER`` or any list the
client gave always wins. Stored in the account's ``settings`` document.

The read-notice policy (``always`` / ``ask`` / ``never``) is the account's ``mdn_policy``
column, see :mod:`mail.mdn`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.schema import accounts

DELIVERY_NOTICES = ("always", "asked")
DEFAULT_DELIVERY_NOTICE = "asked"
SETTING = "delivery_notice"
ALWAYS_NOTIFY = frozenset({"SUCCESS", "FAILURE"})


def delivery_notice(settings: dict[str, Any] | None) -> str:
    """The account's delivery-notice setting, from its settings document."""
    value = (settings or {}).get(SETTING)
    return value if value in DELIVERY_NOTICES else DEFAULT_DELIVERY_NOTICE


async def wants_delivery_notice_always(conn: Any, address: str) -> bool:
    """Whether the mailbox ``address`` (a local sender) asked for delivery notices on
    everything it sends."""
    found = (await conn.execute(select(accounts.c.settings).where(
        accounts.c.address == address.strip().lower()))).scalar()
    return isinstance(found, dict) and delivery_notice(found) == "always"
