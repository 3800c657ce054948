"""Named switches for known client quirks (as Dovecot's ``imap_client_workarounds``).

Each switch is off unless listed in ``[imap] client_workarounds``, has one place in the code
that honours it, and a test. Unknown names are refused at start so that a typo does not
silently leave a quirk unhandled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KNOWN: dict[str, str] = {
    "tb-extra-mailbox-sep": (
        "Thunderbird sometimes sends mailbox names with a trailing '/' (for example after "
        "renaming a folder with sub-folders): strip it instead of refusing the name"
    ),
    "delay-newmail": (
        "announce new mail (EXISTS/RECENT) only in answer to NOOP, CHECK and IDLE, for "
        "clients that mishandle unsolicited EXISTS after other commands"
    ),
}


class UnknownWorkaround(ValueError):
    """A switch name that this server does not know."""


@dataclass(frozen=True, slots=True)
class Workarounds:
    """The enabled switches, as booleans the session reads."""

    tb_extra_mailbox_sep: bool = False
    delay_newmail: bool = False

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Workarounds:
        enabled = set()
        for name in names:
            if name not in KNOWN:
                raise UnknownWorkaround(
                    f"[imap] client_workarounds: unknown switch {name!r}; known: "
                    + ", ".join(sorted(KNOWN))
                )
            enabled.add(name)
        return cls(
            tb_extra_mailbox_sep="tb-extra-mailbox-sep" in enabled,
            delay_newmail="delay-newmail" in enabled,
        )

    def mailbox_name(self, name: str) -> str:
        """A mailbox name as the client meant it."""
        if self.tb_extra_mailbox_sep and len(name) > 1 and name.endswith("/"):
            return name.rstrip("/")
        return name
